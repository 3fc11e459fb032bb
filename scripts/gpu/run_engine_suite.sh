#!/usr/bin/env bash
# The inference engine's GPU suite in one call on the device machine: the engine's GPU tests
# (CUDA ops against the CPU oracle, the engine end to end, graph vs eager; the paged cases with
# each attention variant forced, the staged one at 256 threads, the grid in its former order, the
# splits without the one-wave cap; the projection cases with the GEMV taking up to 8 rows, loading
# ahead at every row length, at the deepest batches and not exclusive),
# compute-sanitizer racecheck and memcheck on the op tests, then `difftx bench` (125M DIFF V1 +
# matched baseline + V2, and the paper's 1.4B DIFF V1 shape + baseline, random weights) beside
# HF transformers generate on the same weights. Logs and tables go to $OUT (default ./gpu-out).
#
# On the build machine (Debian 12 + nvcc 13, no GPU), from the repository root:
#   cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a
#   cmake --build --preset cuda --target difftx_cli test_engine_ops_cuda test_engine_cuda \
#     test_cuda_backend_ops difftx_kernel_trace
#   scripts/gpu/run_engine_suite.sh --stage build/cuda    # binaries + libs -> .carry/engine.tar.gz
# On the GPU machine (carry .carry/engine.tar.gz; python3 there has torch + transformers):
#   scripts/gpu/run_engine_suite.sh [tests|bench125|bench1b|all]     (default: all)
# Stages and their time on an H200 (estimates): tests ~2 min, bench125 ~4 min, bench1b ~5 min.
# Every step's timeout is also cut to what is left of DIFFTX_SUITE_BUDGET seconds (default 560)
# from the start, so one call of `all` ends within the device tool's 10-minute limit even if a
# step hangs; a step with under 20 s left is skipped and says so.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/engine
tests=(test_engine_ops_cuda test_engine_cuda test_cuda_backend_ops)

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  for t in "${tests[@]}"; do cp "$build/tests/cuda/$t" "$stage/bin/"; done
  cp "$build/difftx" "$stage/bin/"
  # The read-floor benchmark of scripts/gpu/read_chain.sh, where built
  [[ -f $build/bench/cuda/bench_read_chain ]] && cp "$build/bench/cuda/bench_read_chain" "$stage/bin/"
  # The CUPTI kernel tracer of scripts/gpu/trace_decode.sh, with the CUPTI it was built against
  if [[ -f $build/bench/cuda/libdifftx_kernel_trace.so ]]; then
    cp "$build/bench/cuda/libdifftx_kernel_trace.so" "$stage/lib/"
    ldd "$stage/lib/libdifftx_kernel_trace.so" | awk '$1 ~ /^libcupti/ && $3 ~ /^\// { print $3 }' |
      xargs -r -I{} cp -L {} "$stage/lib/"
  fi
  # Libraries the GPU image (Ubuntu 24.04 + CUDA) lacks: everything the binaries resolve here but
  # the C/C++ runtimes, OpenBLAS, OpenMP and the CUDA libraries (difftx links cpp-httplib, fmt,
  # SentencePiece, xxHash and what they need).
  ldd "$stage"/bin/* | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    while read -r name path; do
      case $name in
        libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | libgcc_s.so*) ;;
        libcublas* | libcuda.so* | libcudart* | libnccl* | libopenblas* | libgfortran* | libquadmath* | libgomp*) ;;
        *) cp -L "$path" "$stage/lib/$name" ;;
      esac
    done
  strip --strip-debug "$stage"/bin/* 2>/dev/null
  # The binaries hold every kernel for sm_90a and sm_80: compressed they fit what travels.
  tar -C "$stage" -czf "$root/.carry/engine.tar.gz" bin lib
  rm -rf "$stage"
  du -sh "$root/.carry/engine.tar.gz"
  exit 0
fi

if [[ ! -d $stage && -f $root/.carry/engine.tar.gz ]]; then
  mkdir -p "$stage" && tar -C "$stage" -xzf "$root/.carry/engine.tar.gz"
fi

what=${1:-all}
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
cd "$root"
export LD_LIBRARY_PATH=$stage/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
bin=$stage/bin
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
if ldd "$bin/difftx" | grep -q "not found"; then
  ldd "$bin/difftx" | grep "not found"
  echo "missing shared libraries: stage again with --stage"
  exit 2
fi
status=0
budget=${DIFFTX_SUITE_BUDGET:-560}
start=$SECONDS
# limit SECONDS: the smaller of SECONDS and what is left of the budget (0: no time left).
limit() {
  local left=$((budget - (SECONDS - start)))
  ((left < 20)) && { echo 0; return; }
  echo $(($1 < left ? $1 : left))
}
# run_step NAME SECONDS CMD...: runs CMD under the step's limit, or says it was skipped.
run_step() {
  local name=$1 t
  t=$(limit "$2")
  shift 2
  if ((t == 0)); then
    echo "skipped $name: the suite's ${budget}s budget is spent"
    return 124
  fi
  timeout "$t" "$@"
}

if [[ $what == tests || $what == all ]]; then
  for t in "${tests[@]}"; do
    echo "==== $t"
    run_step "$t" 200 "$bin/$t" --gtest_output=xml:"$out/$t.xml" > "$out/$t.log" 2>&1
    rc=$?
    grep -E "^\[  (PASSED|FAILED|SKIPPED) +\]|tests? from .* ran|^\[  FAILED" "$out/$t.log" | tail -n 20
    if [[ $rc -ne 0 ]]; then
      status=1
      grep -B3 -A12 "Failure" "$out/$t.log" | head -n 80
    fi
  done
  # op_cases_with NAME VAR=VALUE FILTER: the op tests matching FILTER again with one variable set.
  op_cases_with() {
    echo "==== test_engine_ops_cuda, $2"
    (export "${2%%=*}=${2#*=}" && run_step "$1" 120 "$bin/test_engine_ops_cuda" --gtest_filter="$3") \
      > "$out/$1.log" 2>&1
    local rc=$?
    grep -E "^\[  (PASSED|FAILED) +\]|tests? from .* ran|^\[  FAILED" "$out/$1.log" | tail -n 10
    [[ $rc -ne 0 ]] && { status=1; grep -B3 -A12 "Failure" "$out/$1.log" | head -n 40; }
  }
  # The paged attention has two kernel variants (DIFFTX_PAGED_LOADS); the runs above used the
  # launcher's choice (by batch size), these force each in turn against the same CPU oracle.
  for loads in staged registers; do
    op_cases_with "$loads" "DIFFTX_PAGED_LOADS=$loads" '*Paged*:*CapturedGraph*'
  done
  # The staged variant's other block size (256 threads) and the grid's former order.
  op_cases_with staged256 DIFFTX_PAGED_STAGED_THREADS=256 '*Paged*:*CapturedGraph*'
  op_cases_with grid-before DIFFTX_PAGED_SPLIT_MAJOR=0 '*Paged*:*CapturedGraph*'
  # The staged variant's splits without the one-wave cap (DIFF V1 at d = 128 then runs two waves).
  op_cases_with two-waves DIFFTX_PAGED_ONE_WAVE=0 '*Paged*:*CapturedGraph*'
  # The splits' arrival with every thread's fence (the code before the acquire-release atomic).
  op_cases_with arrival-fence DIFFTX_ATTN_ARRIVAL=fence '*Paged*:*CapturedGraph*'
  # One-row GEMVs with K >= 2,048 take the split-K kernel; the row-per-warp kernel on them instead.
  op_cases_with gemv-rows DIFFTX_GEMV_SPLITK=0 '*Fused*:*RmsnormQkv*:*CapturedGraph*'
  # ... below 4 MiB of weights only; split-K without the QKV kernel's table of rotations.
  op_cases_with gemv-splitk-4mb DIFFTX_GEMV_SPLITK_MIN_MB=4 '*Fused*:*RmsnormQkv*:*CapturedGraph*'
  op_cases_with gemv-rope-inline DIFFTX_GEMV_ROPE_TABLE=0 '*RmsnormQkv*:*CapturedGraph*'
  # The GEMV kernel takes up to 4 rows by default; its 5-8 row kernels against the same CPU ops.
  op_cases_with gemv8 DIFFTX_GEMV_MAX_ROWS=8 '*Fused*:*RmsnormQkv*:*CapturedGraph*'
  # At one row the GEMV loads ahead only when a weight row is one batch; forced for every length.
  op_cases_with gemv-ahead DIFFTX_GEMV_AHEAD=2 '*Fused*'
  # Without look-ahead it keeps 1 (default), 2 or 4 times its loads in flight: the deepest.
  op_cases_with gemv-depth4 DIFFTX_GEMV_DEPTH=4 '*Fused*:*RmsnormQkv*:*CapturedGraph*'
  # The test shapes are small, so one-row GEMVs run exclusive (shared memory reserved): without.
  op_cases_with gemv-shared0 DIFFTX_GEMV_SMEM_KB=0 '*Fused*:*RmsnormQkv*:*CapturedGraph*'
  if command -v compute-sanitizer > /dev/null; then
    echo "==== compute-sanitizer racecheck: paged attention (shared-memory hazards)"
    run_step racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 99 --print-limit 20 \
      "$bin/test_engine_ops_cuda" --gtest_filter='*PagedAttention*' > "$out/racecheck.log" 2>&1
    mrc=$?
    echo "racecheck exit $mrc; $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$out/racecheck.log" | tail -n 1)"
    [[ $mrc -ne 0 ]] && { status=1; grep -m 20 -E "Race|Error|hazard" "$out/racecheck.log"; }
    echo "==== compute-sanitizer memcheck: engine ops"
    run_step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
      "$bin/test_engine_ops_cuda" --gtest_filter='*PagedAttentionMatches*:*KvPool*:*RopePositions*:*RopeKvCacheWrite*:*FlagsInvalid*:*CapturedGraph*' \
      > "$out/memcheck.log" 2>&1
    mrc=$?
    echo "memcheck exit $mrc; $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -n 1)"
    [[ $mrc -ne 0 ]] && { status=1; grep -m 20 -E "Invalid|Error|Address" "$out/memcheck.log"; }
  fi
fi

hf_flags=(--hf --python python3 --work /tmp/difftx-bench)
if ! python3 -c 'import torch, transformers' 2> /dev/null; then
  echo "python3 lacks torch/transformers: the HF columns are skipped"
  hf_flags=()
fi

if [[ $what == bench125 || $what == all ]]; then
  echo "==== difftx bench: 125M DIFF V1 + matched baseline (with HF), then 125M DIFF V2"
  run_step bench-125m 240 "$bin/difftx" bench --config configs/gpt-125m-diff-v1.json \
    --device cuda --baseline \
    --batch 1,8,32,128 --context 512,4096,32768 --gen 64 "${hf_flags[@]}" --hf-batch "${HF_BATCH_125M:-1}" \
    --hf-context 512 --hf-gen 32 --json "$out/bench-125m.json" > "$out/bench-125m.md" \
    2> "$out/bench-125m.log"
  rc=$?
  [[ $rc -ne 0 ]] && { status=1; echo "bench exit $rc"; tail -n 20 "$out/bench-125m.log"; }
  cat "$out/bench-125m.md"
  run_step bench-125m-v2 60 "$bin/difftx" bench --config configs/gpt-125m-diff-v2.json \
    --device cuda \
    --batch 1,8,32,128 --context 512,4096 --gen 64 --json "$out/bench-125m-v2.json" \
    > "$out/bench-125m-v2.md" 2> "$out/bench-125m-v2.log" || { status=1; tail -n 20 "$out/bench-125m-v2.log"; }
  cat "$out/bench-125m-v2.md"
fi

if [[ $what == bench1b || $what == all ]]; then
  echo "==== difftx bench: 1.4B DIFF V1 (the paper's shape) + matched baseline (with HF)"
  run_step bench-1.4b 330 "$bin/difftx" bench --config bench/engine/diff-1.4b.json \
    --device cuda --baseline \
    --batch 1,8,32,128 --context 512,4096 --gen 48 "${hf_flags[@]}" --hf-batch 1 --hf-context 512 \
    --hf-gen 32 --json "$out/bench-1.4b.json" > "$out/bench-1.4b.md" 2> "$out/bench-1.4b.log"
  rc=$?
  [[ $rc -ne 0 ]] && { status=1; echo "bench exit $rc"; tail -n 20 "$out/bench-1.4b.log"; }
  cat "$out/bench-1.4b.md"
fi
exit $status
