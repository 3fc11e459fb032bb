#!/usr/bin/env bash
# Paged-attention variants at small batches, on the device machine in one call: the engine's GPU
# tests (and the paged cases again under each variant's settings, with the staged variant
# forced), block timelines of one batch-1 attention call per variant, then decode steps of the
# 125M preset and the 1.4B shape with the matched baseline per variant. Needs the staged engine
# binaries (scripts/gpu/run_engine_suite.sh --stage, repacked as .carry/c.tar.xz); everything
# comes back as $OUT/variants.tar.gz.
#   scripts/gpu/attention_variants.sh [tests|times|all]   (default all)
# Environment: VARIANTS, space-separated LABEL=SETTINGS where SETTINGS is "-" (the defaults) or
# VAR:VALUE,VAR:VALUE (default "default=- threads128=DIFFTX_PAGED_STAGED_THREADS:128
# threads512=DIFFTX_PAGED_STAGED_THREADS:512"); BATCHES (default 1,4,8), CONTEXTS (default
# 512,4096); EXTRA: more LABEL=SETTINGS timed at EXTRA_BATCHES only (default: the staged variant
# forced at batch 8).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
what=${1:-all}
# shellcheck source=scripts/gpu/variants_lib.sh
source "$root/scripts/gpu/variants_lib.sh"
use_staged_engine /tmp/variants
variants=${VARIANTS:-"default=- threads128=DIFFTX_PAGED_STAGED_THREADS:128 threads512=DIFFTX_PAGED_STAGED_THREADS:512"}
extra=${EXTRA-"forced-staged=DIFFTX_PAGED_LOADS:staged"}

if [[ $what == tests || $what == all ]]; then
  engine_tests
  for v in $variants; do
    label=${v%%=*}
    # shellcheck disable=SC2046
    env $(settings "${v#*=}") DIFFTX_PAGED_LOADS=staged timeout 100 $B/test_engine_ops_cuda \
      --gtest_filter='*Paged*:*CapturedGraph*' > $o/ops-$label.log 2>&1
    echo "== paged cases, staged forced, $label exit $?"
    summary ops-$label
  done
  if command -v compute-sanitizer > /dev/null; then
    DIFFTX_PAGED_LOADS=staged timeout 120 compute-sanitizer --tool racecheck --error-exitcode 99 \
      --print-limit 20 $B/test_engine_ops_cuda --gtest_filter='*PagedAttention*' > $o/racecheck.log 2>&1
    echo "== racecheck (staged forced) exit $?; $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $o/racecheck.log | tail -n 1)"
  fi
fi

if [[ $what == times || $what == all ]]; then
  for n in 125m 1.4b; do
    c=configs/gpt-125m-diff-v1.json
    [[ $n == 1.4b ]] && c=bench/engine/diff-1.4b.json
    layers=$(python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d.get('model', d)['n_layers'])" "$c")
    for v in $variants; do
      label=${v%%=*}
      # shellcheck disable=SC2046
      env $(settings "${v#*=}") DIFFTX_PAGED_TIMELINE=$((layers * 9 + 6)) timeout 100 $B/difftx \
        bench --config $c --device cuda --batch 1 --context 512 --gen 16 --no-graphs \
        > $o/timeline-$n-$label.log 2>&1
      echo "== timeline $n, $label"
      grep -A10 "paged attention timeline" $o/timeline-$n-$label.log | head -n 11
    done
    # time LABEL SETTINGS BATCHES: one bench run.
    time_variant() {
      # shellcheck disable=SC2046
      env $(settings "$2") timeout 150 $B/difftx bench --config $c --device cuda --baseline \
        --batch "$3" --context "${CONTEXTS:-512,4096}" --gen 64 --json $o/times-$n-$1.json \
        > $o/times-$n-$1.md 2> $o/times-$n-$1.log
      echo "== $n, $1"
      grep -E "^\[bench\] (diff|softmax)|batch [0-9]+ context" $o/times-$n-$1.log
    }
    for v in $variants; do time_variant "${v%%=*}" "${v#*=}" "${BATCHES:-1,4,8}"; done
    for v in $extra; do time_variant "${v%%=*}" "${v#*=}" "${EXTRA_BATCHES:-8}"; done
  done
fi
tar -C /tmp -czf "$out/variants.tar.gz" variants
