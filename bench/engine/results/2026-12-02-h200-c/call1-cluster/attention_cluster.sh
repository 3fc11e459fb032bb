#!/usr/bin/env bash
# Whether the staged paged attention should combine its splits within thread-block clusters
# (distributed shared memory) instead of through the workspace in global memory, on the device
# machine in one call: the engine's GPU tests (clusters on, as the launcher picks them; the paged
# cases again with the staged variant forced with clusters on and off; racecheck on the paged
# attention), block timelines of one batch-1 attention call with clusters on and off, then
# batch-1 and batch-4 decode steps (contexts 512 and 4K, with the matched baseline) of the 125M
# preset and the 1.4B shape: on, off, on. Needs the staged engine binaries
# (scripts/gpu/run_engine_suite.sh --stage, repacked as .carry/c.tar.xz); everything comes back
# as $OUT/cluster.tar.gz.
#   scripts/gpu/attention_cluster.sh [tests|times|all]   (default all)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
what=${1:-all}
mkdir -p .carry/engine
[[ -f .carry/c.tar.xz ]] && tar -C .carry/engine -xJf .carry/c.tar.xz
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
B=.carry/engine/bin
o=/tmp/cluster
out=${OUT:-$root/gpu-out}
mkdir -p "$o" "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $o/gpu.txt

if [[ $what == tests || $what == all ]]; then
  # summary NAME: the test log's verdict lines and, on failure, the failures.
  summary() {
    grep -E "^\[  (PASSED|FAILED) +\]|^\[  FAILED" "$o/$1.log" | tail -n 8
    grep -q "^\[  FAILED" "$o/$1.log" && grep -B3 -A12 "Failure" "$o/$1.log" | head -n 40
  }
  for t in test_engine_ops_cuda test_engine_cuda test_cuda_backend_ops; do
    timeout 200 $B/$t > $o/$t.log 2>&1
    echo "== $t exit $?"
    summary $t
  done
  for c in 1 0; do
    DIFFTX_PAGED_LOADS=staged DIFFTX_PAGED_CLUSTER=$c timeout 100 $B/test_engine_ops_cuda \
      --gtest_filter='*Paged*:*CapturedGraph*' > $o/staged-cluster$c.log 2>&1
    echo "== paged cases, staged, DIFFTX_PAGED_CLUSTER=$c exit $?"
    summary staged-cluster$c
  done
  DIFFTX_PAGED_CLUSTER=0 timeout 100 $B/test_engine_cuda > $o/engine-cluster0.log 2>&1
  echo "== test_engine_cuda, DIFFTX_PAGED_CLUSTER=0 exit $?"
  summary engine-cluster0
  if command -v compute-sanitizer > /dev/null; then
    DIFFTX_PAGED_LOADS=staged timeout 120 compute-sanitizer --tool racecheck --error-exitcode 99 \
      --print-limit 20 $B/test_engine_ops_cuda --gtest_filter='*PagedAttention*' > $o/racecheck.log 2>&1
    echo "== racecheck exit $?; $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $o/racecheck.log | tail -n 1)"
    DIFFTX_PAGED_LOADS=staged timeout 120 compute-sanitizer --tool memcheck --error-exitcode 99 \
      --print-limit 20 $B/test_engine_ops_cuda --gtest_filter='*PagedAttention*' > $o/memcheck.log 2>&1
    echo "== memcheck exit $?; $(grep -E 'ERROR SUMMARY' $o/memcheck.log | tail -n 1)"
  fi
fi

if [[ $what == times || $what == all ]]; then
  for n in 125m 1.4b; do
    c=configs/gpt-125m-diff-v1.json
    [[ $n == 1.4b ]] && c=bench/engine/diff-1.4b.json
    layers=$(python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d.get('model', d)['n_layers'])" "$c")
    for k in 1 0; do
      DIFFTX_PAGED_CLUSTER=$k DIFFTX_PAGED_TIMELINE=$((layers * 9 + 6)) timeout 100 $B/difftx bench \
        --config $c --device cuda --batch 1 --context 512 --gen 16 --no-graphs \
        > $o/timeline-$n-cluster$k.log 2>&1
      echo "== timeline $n, DIFFTX_PAGED_CLUSTER=$k"
      grep -A10 "paged attention timeline" $o/timeline-$n-cluster$k.log | head -n 11
    done
    for r in a b c; do
      k=1
      [[ $r == b ]] && k=0
      DIFFTX_PAGED_CLUSTER=$k timeout 150 $B/difftx bench --config $c --device cuda --baseline \
        --batch 1,4 --context 512,4096 --gen 64 --json $o/times-$n-cluster$k-$r.json \
        > $o/times-$n-cluster$k-$r.md 2> $o/times-$n-cluster$k-$r.log
      echo "== $n, DIFFTX_PAGED_CLUSTER=$k ($r)"
      grep -E "^\[bench\] (diff|softmax)|batch [0-9]+ context" $o/times-$n-cluster$k-$r.log
    done
  done
fi
tar -C /tmp -czf "$out/cluster.tar.gz" cluster
