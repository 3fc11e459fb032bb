#!/usr/bin/env bash
# The GPU suite in one call on the device machine: every gpu-labelled test program of the cuda
# build (backend ops, attention kernels, whole model), compute-sanitizer memcheck on the
# attention tests, an end-to-end `difftx train --device cuda` + `generate`, then the benchmarks.
#
# On the build machine (Debian 12 + nvcc, no GPU):
#   cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a && cmake --build --preset cuda
#   scripts/gpu/run_gpu_suite.sh --stage build/cuda     # binaries + missing shared libs -> .carry/gpu
# On the GPU machine (carry .carry/gpu and data/brown):
#   scripts/gpu/run_gpu_suite.sh [tests|train|attention|bench|all]   # logs under $OUT
# attention: the fused-kernel tests in both kernel families, the attention benchmark and the
# PyTorch comparison (bench/cuda/run_attention_bench.sh); bench: the 125M training benchmark.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/gpu
tests=(test_cuda_backend_ops test_attention_kernels test_cuda_model)
benches=(bench_attention bench_train)

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  for t in "${tests[@]}"; do cp "$build/tests/cuda/$t" "$stage/bin/"; done
  for b in "${benches[@]}"; do [[ -x $build/bench/cuda/$b ]] && cp "$build/bench/cuda/$b" "$stage/bin/"; done
  cp "$build/difftx" "$stage/bin/"
  # libraries the GPU image (Ubuntu 24.04 + CUDA) lacks; it has OpenBLAS and the GCC runtimes, and
  # carrying libopenblas (36 MB) would break the 64 MiB limit on what travels
  for lib in libfmt.so.9 libsentencepiece.so.0 libprotobuf-lite.so.32; do
    path=$(ldd "$stage/bin/difftx" "$stage/bin/test_cuda_model" | awk -v l="$lib" '$1 == l { print $3; exit }')
    [[ -n $path ]] && cp -L "$path" "$stage/lib/"
  done
  strip --strip-debug "$stage"/bin/* 2>/dev/null
  du -sh "$stage"
  exit 0
fi

what=${1:-all}
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$stage/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
# Passive OpenMP / OpenBLAS waiting: busy-waiting pools slow the CPU oracle in the tests
# (test_cuda_model: 65 s passive, 292 s busy on an H200 machine, against a 400 s timeout).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
status=0

if [[ $what == tests || $what == all ]]; then
  for t in "${tests[@]}"; do
    echo "==== $t"
    timeout 400 "$stage/bin/$t" --gtest_output=xml:"$out/$t.xml" > "$out/$t.log" 2>&1
    rc=$?
    grep -E "^\[  (PASSED|FAILED|SKIPPED) +\]|tests? from .* ran" "$out/$t.log" | tail -n 12
    [[ $rc -ne 0 ]] && { status=1; grep -B2 -A8 "Failure" "$out/$t.log" | head -n 60; }
  done
  if command -v compute-sanitizer >/dev/null; then
    echo "==== compute-sanitizer memcheck: attention tests"
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 99 "$stage/bin/test_attention_kernels" \
      --gtest_filter='Cases/*' > "$out/memcheck.log" 2>&1
    echo "memcheck exit $? ; $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -n 1)"
  fi
fi

if [[ $what == train || $what == all ]]; then
  echo "==== difftx train --device cuda (configs/small-gpu.json) + generate"
  cd "$root"
  timeout 240 "$stage/bin/difftx" train --config configs/small-gpu.json --device cuda --out "$out/run" 2>&1 | tail -n 12
  [[ ${PIPESTATUS[0]} -ne 0 ]] && status=1
  timeout 60 "$stage/bin/difftx" generate --checkpoint "$out/run" --device cuda --prompt "The jury said" \
    --max-tokens 40 --seed 1 2>&1 | tail -n 4
  rm -rf "$out/run/checkpoints"
fi

if [[ $what == attention || $what == all ]]; then
  # run_attention_bench.sh runs the binaries it finds in .carry/attn.
  mkdir -p "$root/.carry/attn/lib"
  cp "$stage/bin/bench_attention" "$stage/bin/test_attention_kernels" "$root/.carry/attn/"
  cp "$stage"/lib/* "$root/.carry/attn/lib/"
  cp -L /usr/local/cuda/lib64/libcudart.so.13 "$root/.carry/attn/lib/" 2>/dev/null
  cd "$root" && OUT=$out/attention bash bench/cuda/run_attention_bench.sh tests bench 2>&1 | tail -n 60
  [[ ${PIPESTATUS[0]} -ne 0 ]] && status=1
fi

if [[ $what == bench || $what == all ]]; then
  # run_train_bench.sh runs the binary it finds in .carry/bench.
  mkdir -p "$root/.carry/bench/lib"
  cp "$stage/bin/bench_train" "$root/.carry/bench/"
  cp "$stage"/lib/* "$root/.carry/bench/lib/"
  cd "$root" && OUT=$out/bench bash bench/cuda/run_train_bench.sh 2>&1 | tail -n 40
fi
exit $status
