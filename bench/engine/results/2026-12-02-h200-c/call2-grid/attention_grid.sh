#!/usr/bin/env bash
# The paged attention's grid order and block size at batch 1, on the device machine in one call:
# the engine's GPU tests (split-major grid, the default; the paged cases again in the former
# order, DIFFTX_PAGED_SPLIT_MAJOR=0), the same tests of a build with 256 threads per block
# (binaries *-t256 beside the staged ones, if carried), block timelines of one batch-1 attention
# call per variant, then decode steps of the 125M preset and the 1.4B shape (batch 1 and 8,
# contexts 512 and 4K, with the matched baseline) per variant, the default first and last.
# Needs the staged engine binaries (scripts/gpu/run_engine_suite.sh --stage, repacked as
# .carry/c.tar.xz); everything comes back as $OUT/grid.tar.gz.
#   scripts/gpu/attention_grid.sh [tests|times|all]   (default all)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
what=${1:-all}
mkdir -p .carry/engine
[[ -f .carry/c.tar.xz ]] && tar -C .carry/engine -xJf .carry/c.tar.xz
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
B=.carry/engine/bin
o=/tmp/grid
out=${OUT:-$root/gpu-out}
mkdir -p "$o" "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $o/gpu.txt
# Variants: label, environment (VAR=VALUE or -), binary suffix (- for none).
variants=("split-major - -" "grid-before DIFFTX_PAGED_SPLIT_MAJOR=0 -")
[[ -x $B/difftx-t256 ]] && variants+=("t256 - -t256")
variants+=("split-major-again - -")

summary() {
  grep -E "^\[  (PASSED|FAILED) +\]|^\[  FAILED" "$o/$1.log" | tail -n 8
  grep -q "^\[  FAILED" "$o/$1.log" && grep -B3 -A12 "Failure" "$o/$1.log" | head -n 40
}
if [[ $what == tests || $what == all ]]; then
  for t in test_engine_ops_cuda test_engine_cuda test_cuda_backend_ops; do
    timeout 200 $B/$t > $o/$t.log 2>&1
    echo "== $t exit $?"
    summary $t
  done
  for loads in staged registers; do
    DIFFTX_PAGED_LOADS=$loads DIFFTX_PAGED_SPLIT_MAJOR=0 timeout 100 $B/test_engine_ops_cuda \
      --gtest_filter='*Paged*:*CapturedGraph*' > $o/ops-$loads-before.log 2>&1
    echo "== paged cases, $loads, DIFFTX_PAGED_SPLIT_MAJOR=0 exit $?"
    summary ops-$loads-before
    DIFFTX_PAGED_LOADS=$loads timeout 100 $B/test_engine_ops_cuda \
      --gtest_filter='*Paged*:*CapturedGraph*' > $o/ops-$loads.log 2>&1
    echo "== paged cases, $loads exit $?"
    summary ops-$loads
  done
  if [[ -x $B/test_engine_ops_cuda-t256 ]]; then
    for t in test_engine_ops_cuda test_engine_cuda; do
      timeout 200 $B/$t-t256 > $o/$t-t256.log 2>&1
      echo "== $t-t256 exit $?"
      summary $t-t256
    done
    for loads in staged registers; do
      DIFFTX_PAGED_LOADS=$loads timeout 100 $B/test_engine_ops_cuda-t256 \
        --gtest_filter='*Paged*:*CapturedGraph*' > $o/ops-$loads-t256.log 2>&1
      echo "== paged cases, $loads, t256 exit $?"
      summary ops-$loads-t256
    done
  fi
fi

if [[ $what == times || $what == all ]]; then
  for n in 125m 1.4b; do
    c=configs/gpt-125m-diff-v1.json
    [[ $n == 1.4b ]] && c=bench/engine/diff-1.4b.json
    layers=$(python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d.get('model', d)['n_layers'])" "$c")
    for v in "${variants[@]}"; do
      read -r label envs suffix <<< "$v"
      [[ $envs == - ]] && envs=
      [[ $suffix == - ]] && suffix=
      [[ $label == *again ]] && continue
      # shellcheck disable=SC2086
      env $envs DIFFTX_PAGED_TIMELINE=$((layers * 9 + 6)) timeout 100 $B/difftx$suffix bench \
        --config $c --device cuda --batch 1 --context 512 --gen 16 --no-graphs \
        > $o/timeline-$n-$label.log 2>&1
      echo "== timeline $n, $label"
      grep -A10 "paged attention timeline" $o/timeline-$n-$label.log | head -n 11
    done
    for v in "${variants[@]}"; do
      read -r label envs suffix <<< "$v"
      [[ $envs == - ]] && envs=
      [[ $suffix == - ]] && suffix=
      # shellcheck disable=SC2086
      env $envs timeout 150 $B/difftx$suffix bench --config $c --device cuda --baseline \
        --batch 1,8 --context 512,4096 --gen 64 --json $o/times-$n-$label.json \
        > $o/times-$n-$label.md 2> $o/times-$n-$label.log
      echo "== $n, $label"
      grep -E "^\[bench\] (diff|softmax)|batch [0-9]+ context" $o/times-$n-$label.log
    done
  done
fi
tar -C /tmp -czf "$out/grid.tar.gz" grid
