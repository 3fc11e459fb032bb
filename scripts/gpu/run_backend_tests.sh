#!/usr/bin/env bash
# Runs the CUDA backend-ops tests (tests/cuda/test_cuda_backend_ops.cpp) on a GPU machine from a
# build made elsewhere, then the same binary under compute-sanitizer memcheck on the smaller
# cases. Logs go to $OUT (or ./gpu-out).
#
# Prepare on the build machine (Debian 12, nvcc), then carry .carry/ops-cuda to the GPU machine:
#   scripts/gpu/run_backend_tests.sh --stage build/ops-cuda
# which copies the test binary and the shared libraries the GPU image may lack (fmt, OpenBLAS
# and its Fortran runtime, libgomp) into .carry/ops-cuda. On the GPU machine:
#   scripts/gpu/run_backend_tests.sh
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/ops-cuda

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <build dir>}
  mkdir -p "$stage/bin" "$stage/lib"
  cp "$build/tests/cuda/test_cuda_backend_ops" "$stage/bin/"
  for lib in libfmt.so.9 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libgomp.so.1; do
    path=$(ldd "$stage/bin/test_cuda_backend_ops" | awk -v l="$lib" '$1 == l { print $3 }')
    [[ -n $path ]] && cp -L "$path" "$stage/lib/"
  done
  du -sh "$stage"
  exit 0
fi

out=${OUT:-$root/gpu-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$stage/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
bin=$stage/bin/test_cuda_backend_ops

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$out/gpu.txt"
if ldd "$bin" | grep -q "not found"; then
  ldd "$bin" | tee "$out/ldd.txt"
  echo "missing shared libraries" >&2
  exit 2
fi

status=0
timeout 240 "$bin" --gtest_output=xml:"$out/test_cuda_backend_ops.xml" 2>&1 | tee "$out/test.log"
rc=${PIPESTATUS[0]}
[[ $rc -ne 0 ]] && status=$rc

# memcheck: out-of-bounds and misaligned accesses in every kernel of the smaller cases (the
# largest shapes of the op-case sweeps left out).
if command -v compute-sanitizer >/dev/null; then
  timeout 270 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 "$bin" \
    --gtest_filter='-*linear_n512_*:*linear_n33_*:*_n3000001:*cross_entropy_n16_v32000*:*cross_entropy_n5_v50257*:*cross_entropy_n3_v128256*:*adamw_n100003:*rmsnorm_n130_*:*rmsnorm_n3_c16384*' \
    > "$out/memcheck.log" 2>&1
  mrc=$?
  tail -n 25 "$out/memcheck.log"
  echo "memcheck exit code: $mrc"
  [[ $mrc -ne 0 && $status -eq 0 ]] && status=$mrc
fi

echo "---- summary"
sed -n '/^worst error per op/,/^$/p' "$out/test.log"
grep -E "^\[  (PASSED|FAILED|SKIPPED) +\]|tests? ran|seed" "$out/test.log" | tail -n 30
exit $status
