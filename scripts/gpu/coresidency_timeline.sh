#!/usr/bin/env bash
# Where the 1.4B shape's paged attention spends its time when its blocks start beside the QKV
# projection's (fifteenth session): per variant, the block timeline of one batch-1 attention call
# of a mid-run decode step (512 tokens, no graphs) and the kernel trace of a graph-launched step.
# Needs the staged engine binaries (scripts/gpu/run_engine_suite.sh --stage, repacked as
# .carry/c.tar.xz); everything comes back as $OUT/coresidency.tar.gz.
#   scripts/gpu/coresidency_timeline.sh
# Environment: VARIANTS (LABEL=SETTINGS words as in variants_lib.sh; default the committed code
# and the co-resident pair: 256-thread attention blocks beside the QKV projection capped at 88
# registers), TRACE (labels to trace, default all).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/gpu/variants_lib.sh
source "$root/scripts/gpu/variants_lib.sh"
use_staged_engine /tmp/coresidency
variants=${VARIANTS:-"committed=- co=DIFFTX_PAGED_STAGED_THREADS:256,DIFFTX_GEMV_QKV:cap88"}
c=bench/engine/diff-1.4b.json
layers=$(python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d.get('model', d)['n_layers'])" "$c")
for v in $variants; do
  label=${v%%=*}
  # shellcheck disable=SC2046
  env $(settings "${v#*=}") DIFFTX_PAGED_TIMELINE=$((layers * 9 + 6)) timeout 100 "$B/difftx" \
    bench --config $c --device cuda --batch 1 --context 512 --gen 16 --no-graphs \
    > "$o/timeline-1.4b-$label.log" 2>&1
  echo "== timeline 1.4b, $label"
  grep -A10 "paged attention timeline" "$o/timeline-1.4b-$label.log" | head -n 11
done
for v in $variants; do
  label=${v%%=*}
  [[ -z ${TRACE:-} || " $TRACE " == *" $label "* ]] || continue
  # shellcheck disable=SC2046
  OUT=$o BATCHES=1 TRACE_ENV="$(settings "${v#*=}")" TAG=-$label CONFIGS=$c \
    scripts/gpu/trace_decode.sh 2>&1 | tail -n 16
done
tar -C /tmp -czf "$out/coresidency.tar.gz" coresidency
