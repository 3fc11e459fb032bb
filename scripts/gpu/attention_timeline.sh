#!/usr/bin/env bash
# Where a decode step's paged attention spends its time, on the GPU machine: `difftx bench
# --no-graphs` at batch 1 with DIFFTX_PAGED_TIMELINE set, so one attention call of a mid-run
# decode step (layer 5 of the 10th step) records its blocks' global-timer stamps and prints the
# table of paged_attention_timeline.cu; once per config and kernel variant (DIFFTX_PAGED_LOADS).
# Needs the staged engine binaries (run_engine_suite.sh --stage). Logs in $OUT.
#   scripts/gpu/attention_timeline.sh   (with CALLS=N: scripts/gpu/timeline_summary.py on its output)
# Environment: CONFIGS (default: the 125M DIFF V1 and softmax configs, the 1.4B shape),
# VARIANTS (default "staged registers"), CONTEXT (default 512), CALLS (attention calls recorded
# from that one on, i.e. that many layers of the step; default 1), TIMELINE_ENV (extra
# environment for the runs, e.g. DIFFTX_GEMV_QKV=cap88), TAG (log file suffix).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
out=${OUT:-$root/timeline-out}
mkdir -p "$out"
if [[ ! -d .carry/engine && -f .carry/engine.tar.gz ]]; then
  mkdir -p .carry/engine && tar -C .carry/engine -xzf .carry/engine.tar.gz
fi
bin=.carry/engine/bin
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
configs=${CONFIGS:-"configs/gpt-125m-diff-v1.json configs/gpt-125m-softmax.json bench/engine/diff-1.4b.json"}
for c in $configs; do
  name=$(basename "$c" .json)
  layers=$(python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d.get('model', d)['n_layers'])" "$c")
  for variant in ${VARIANTS:-staged registers}; do
    log=$out/timeline-$name-$variant${TAG:-}.log
    echo "==== $name, $variant, batch 1, context ${CONTEXT:-512} ${TIMELINE_ENV:-}"
    # shellcheck disable=SC2086 # TIMELINE_ENV: VAR=VALUE words
    env ${TIMELINE_ENV:-} DIFFTX_PAGED_LOADS=$variant DIFFTX_PAGED_TIMELINE=$((layers * 9 + 6)) \
      DIFFTX_PAGED_TIMELINE_CALLS=${CALLS:-1} \
      timeout 120 "$bin/difftx" bench --config "$c" --device cuda --batch 1 \
      --context "${CONTEXT:-512}" --gen 16 --no-graphs > "$log" 2>&1
    echo "exit $?"
    grep -A13 "paged attention timeline" "$log"
  done
done
