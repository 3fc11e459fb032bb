#!/usr/bin/env bash
# Decode GEMV variants on the device machine in one call: the engine's GPU tests (and the
# projection cases again under each variant's settings), then batch-1 and batch-4 decode steps of
# the 125M preset and the 1.4B shape with the matched baseline, one `difftx bench` process per
# variant, alternating the variants over ROUNDS rounds so that drift between runs shows, then the
# kernel trace of the first variant at batch 1. Needs the staged engine binaries
# (scripts/gpu/run_engine_suite.sh --stage, repacked as .carry/c.tar.xz); everything comes back
# as $OUT/gemv.tar.gz.
#   scripts/gpu/gemv_variants.sh [tests|times|trace|all]   (default all)
# Environment: VARIANTS, space-separated LABEL=SETTINGS where SETTINGS is "-" (the defaults) or
# VAR:VALUE,VAR:VALUE, BIN:ref (or BIN:NAME for .carry/NAME.tar.xz) among them for another
# build's difftx (variants_lib.sh; default "splitk=- rows=DIFFTX_GEMV_SPLITK:0"); BATCHES
# (default 1,4), CONTEXTS (default 512,4096), ROUNDS (default 2), MODELS (default
# "125m 1.4b"), TRACE (labels of the variants to
# trace, default the first), TRACE_CONFIGS (trace_decode.sh's CONFIGS), OPS_FILTER (the gtest
# filter of the op cases run again under each variant; default the projection and graph cases),
# SANITIZE_ENV (VAR=VALUE words set for the memcheck and racecheck runs), ENGINE_TESTS=0 and
# SANITIZE=0 (skip the whole engine test binaries, the sanitizer runs).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
what=${1:-all}
# shellcheck source=scripts/gpu/variants_lib.sh
source "$root/scripts/gpu/variants_lib.sh"
use_staged_engine /tmp/gemv
variants=${VARIANTS:-"splitk=- rows=DIFFTX_GEMV_SPLITK:0"}

if [[ $what == tests || $what == all ]]; then
  [[ ${ENGINE_TESTS:-1} == 0 ]] || engine_tests
  for v in $variants; do
    label=${v%%=*}
    # shellcheck disable=SC2046
    env $(settings "${v#*=}") timeout 150 $B/test_engine_ops_cuda \
      --gtest_filter="${OPS_FILTER:-*Fused*:*RmsnormQkv*:*CapturedGraph*}" > $o/ops-$label.log 2>&1
    echo "== projection cases, $label exit $?"
    summary ops-$label
  done
  if [[ ${SANITIZE:-1} != 0 ]] && command -v compute-sanitizer > /dev/null; then
    # shellcheck disable=SC2086
    env ${SANITIZE_ENV:-} timeout 150 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
      $B/test_engine_ops_cuda --gtest_filter='*LongInputs*:*RmsnormQkv*' > $o/memcheck.log 2>&1
    echo "== memcheck (split-K cases) exit $?; $(grep -E 'ERROR SUMMARY' $o/memcheck.log | tail -n 1)"
    # shellcheck disable=SC2086
    env ${SANITIZE_ENV:-} timeout 150 compute-sanitizer --tool racecheck --error-exitcode 99 --print-limit 20 \
      $B/test_engine_ops_cuda --gtest_filter='*LongInputs*' > $o/racecheck.log 2>&1
    echo "== racecheck (split-K cases) exit $?; $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $o/racecheck.log | tail -n 1)"
  fi
fi

if [[ $what == times || $what == all ]]; then
  for round in $(seq 1 "${ROUNDS:-2}"); do
    for n in ${MODELS:-125m 1.4b}; do
      c=configs/gpt-125m-diff-v1.json
      [[ $n == 1.4b ]] && c=bench/engine/diff-1.4b.json
      for v in $variants; do
        label=${v%%=*}
        # shellcheck disable=SC2046
        env $(settings "${v#*=}") timeout 150 "$(bin_for "${v#*=}")"/difftx bench --config $c --device cuda --baseline \
          --batch "${BATCHES:-1,4}" --context "${CONTEXTS:-512,4096}" --gen 64 \
          --json $o/times-$n-$label-r$round.json > $o/times-$n-$label-r$round.md \
          2> $o/times-$n-$label-r$round.log
        echo "== $n, $label, round $round (exit $?)"
        grep -E "^\[bench\] (diff|softmax)|batch [0-9]+ context" $o/times-$n-$label-r$round.log
      done
    done
  done
fi

if [[ $what == trace || $what == all ]]; then
  for v in $variants; do
    label=${v%%=*}
    [[ " ${TRACE:-${variants%%=*}} " == *" $label "* ]] || continue
    # shellcheck disable=SC2046
    OUT=$o BATCHES=1 TRACE_ENV="$(settings "${v#*=}")" TAG=-$label BIN="$(bin_for "${v#*=}")/difftx" \
      CONFIGS=${TRACE_CONFIGS:-} scripts/gpu/trace_decode.sh 2>&1 | tail -n 40
  done
fi

tar -C /tmp -czf "$out/gemv.tar.gz" gemv
