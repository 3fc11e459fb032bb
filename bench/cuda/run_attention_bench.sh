#!/usr/bin/env bash
# The one script the GPU machine runs for the fused attention kernels: use the carried binaries
# (.carry/attn, built elsewhere with -DCMAKE_CUDA_ARCHITECTURES=90a) or build them, then the
# GoogleTest suite, compute-sanitizer memcheck on the attention tests, the fused-kernel benchmark
# and the PyTorch comparison. Logs go to $OUT (default out/attention); the comparison table is
# printed last.
#   usage: bench/cuda/run_attention_bench.sh [tests|sanitize|bench|all]...   (default: all)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/attention}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(all)
want() { for s in "${steps[@]}"; do [ "$s" = "$1" ] || [ "$s" = all ] && return 0; done; return 1; }

if [ -x .carry/attn/test_attention_kernels ]; then
  BIN=.carry/attn
  export LD_LIBRARY_PATH="$PWD/.carry/attn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  # (CMake < 3.26 does not know nvcc's C++20 flag: the two CUDA20 options supply it)
  cmake --preset cuda -B build/attn-cuda -DCMAKE_CUDA_ARCHITECTURES=90a -DDIFFTX_TESTS=ON \
    -DDIFFTX_BENCH=ON -DDIFFTX_WERROR=OFF -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 \
    -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20 > "$OUT/configure.log" 2>&1 &&
    cmake --build build/attn-cuda -j16 --target test_attention_kernels bench_attention \
      > "$OUT/build.log" 2>&1 || { echo "build failed, see $OUT/build.log"; tail -30 "$OUT/build.log"; exit 1; }
  mkdir -p build/attn-cuda/bin
  cp build/attn-cuda/tests/cuda/test_attention_kernels build/attn-cuda/bench/cuda/bench_attention build/attn-cuda/bin/
  BIN=build/attn-cuda/bin
fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
status=0

if want tests; then
  echo "== tests (default kernels: wgmma on sm_90)"
  timeout ${ATTN_TEST_TIMEOUT:-300} "$BIN/test_attention_kernels" > "$OUT/test.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|tests ran|Failure|error" "$OUT/test.log" | head -40
  echo "== tests (portable mma.sync kernels)"
  DIFFTX_ATTENTION_KERNELS=mma timeout ${ATTN_TEST_TIMEOUT:-300} "$BIN/test_attention_kernels" \
    > "$OUT/test_mma.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|tests ran|Failure|error" "$OUT/test_mma.log" | head -40
fi
if want sanitize; then
  for kernels in default mma; do
    echo "== compute-sanitizer memcheck ($kernels kernels)"
    DIFFTX_ATTENTION_KERNELS=$kernels timeout ${ATTN_SAN_TIMEOUT:-300} compute-sanitizer --tool memcheck \
      --error-exitcode 3 "$BIN/test_attention_kernels" --gtest_filter='Cases/*' \
      > "$OUT/memcheck_$kernels.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && status=1
    grep -E "ERROR SUMMARY|tests ran|PASSED|FAILED" "$OUT/memcheck_$kernels.log" | tail -5
    echo "memcheck exit code $rc"
  done
fi
if want bench; then
  echo "== benchmark (fused kernels)"
  "$BIN/bench_attention" ${ATTN_BENCH_ARGS:-} > "$OUT/bench_ours.log" 2>&1 || status=1
  grep -v "^RESULT" "$OUT/bench_ours.log"
  echo "== benchmark (PyTorch SDPA paths)"
  PYTHONUNBUFFERED=1 python3 bench/cuda/attention_torch.py ${ATTN_BENCH_ARGS:-} --ours "$OUT/bench_ours.log" \
    > "$OUT/bench_torch.log" 2>&1 || status=1
  cat "$OUT/bench_torch.log"
fi
exit $status
