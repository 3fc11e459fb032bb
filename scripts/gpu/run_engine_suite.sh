#!/usr/bin/env bash
# The inference engine's GPU suite in one call on the device machine: the engine's GPU tests
# (CUDA ops against the CPU oracle, the engine end to end, graph vs eager), compute-sanitizer
# memcheck on the op tests, then `difftx bench` (125M DIFF V1 + matched baseline + V2, and the
# paper's 1.4B DIFF V1 shape + baseline, random weights) beside HF transformers generate on the
# same weights. Logs and tables go to $OUT (default ./gpu-out).
#
# On the build machine (Debian 12 + nvcc 13, no GPU), from the repository root:
#   cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a
#   cmake --build --preset cuda --target difftx_cli test_engine_ops_cuda test_engine_cuda
#   scripts/gpu/run_engine_suite.sh --stage build/cuda    # binaries + missing libs -> .carry/engine
# On the GPU machine (carry .carry/engine; python3 there has torch + transformers):
#   scripts/gpu/run_engine_suite.sh [tests|bench125|bench1b|all]     (default: all)
# Stages and their time on an H200 (estimates): tests ~2 min, bench125 ~4 min, bench1b ~4 min.
# Each stage has its own timeout, so `all` ends within ~10 minutes even if one hangs.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/engine
tests=(test_engine_ops_cuda test_engine_cuda)

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  for t in "${tests[@]}"; do cp "$build/tests/cuda/$t" "$stage/bin/"; done
  cp "$build/difftx" "$stage/bin/"
  # Libraries the GPU image (Ubuntu 24.04 + CUDA) lacks; it has OpenBLAS, cuBLAS and the GCC
  # runtimes.
  for lib in libfmt.so.9 libsentencepiece.so.0 libprotobuf-lite.so.32; do
    path=$(ldd "$stage/bin/difftx" | awk -v l="$lib" '$1 == l { print $3; exit }')
    [[ -n $path ]] && cp -L "$path" "$stage/lib/"
  done
  strip --strip-debug "$stage"/bin/* 2>/dev/null
  du -sh "$stage"
  exit 0
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

if [[ $what == tests || $what == all ]]; then
  for t in "${tests[@]}"; do
    echo "==== $t"
    timeout 300 "$bin/$t" --gtest_output=xml:"$out/$t.xml" > "$out/$t.log" 2>&1
    rc=$?
    grep -E "^\[  (PASSED|FAILED|SKIPPED) +\]|tests? from .* ran|^\[  FAILED" "$out/$t.log" | tail -n 20
    if [[ $rc -ne 0 ]]; then
      status=1
      grep -B3 -A12 "Failure" "$out/$t.log" | head -n 80
    fi
  done
  if command -v compute-sanitizer > /dev/null; then
    echo "==== compute-sanitizer memcheck: engine ops"
    timeout 240 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
      "$bin/test_engine_ops_cuda" --gtest_filter='*PagedAttentionMatches*:*KvPool*:*RopePositions*:*FlagsInvalid*:*CapturedGraph*' \
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
  timeout 420 "$bin/difftx" bench --config configs/gpt-125m-diff-v1.json --device cuda --baseline \
    --batch 1,8,32,128 --context 512,4096,32768 --gen 64 "${hf_flags[@]}" --hf-batch 1,8 \
    --hf-context 512 --hf-gen 32 --json "$out/bench-125m.json" > "$out/bench-125m.md" \
    2> "$out/bench-125m.log"
  rc=$?
  [[ $rc -ne 0 ]] && { status=1; echo "bench exit $rc"; tail -n 20 "$out/bench-125m.log"; }
  cat "$out/bench-125m.md"
  timeout 120 "$bin/difftx" bench --config configs/gpt-125m-diff-v2.json --device cuda \
    --batch 1,8,32,128 --context 512,4096 --gen 64 --json "$out/bench-125m-v2.json" \
    > "$out/bench-125m-v2.md" 2> "$out/bench-125m-v2.log" || { status=1; tail -n 20 "$out/bench-125m-v2.log"; }
  cat "$out/bench-125m-v2.md"
fi

if [[ $what == bench1b || $what == all ]]; then
  echo "==== difftx bench: 1.4B DIFF V1 (the paper's shape) + matched baseline (with HF)"
  timeout 480 "$bin/difftx" bench --config bench/engine/diff-1.4b.json --device cuda --baseline \
    --batch 1,8,32,128 --context 512,4096 --gen 48 "${hf_flags[@]}" --hf-batch 1 --hf-context 512 \
    --hf-gen 32 --json "$out/bench-1.4b.json" > "$out/bench-1.4b.md" 2> "$out/bench-1.4b.log"
  rc=$?
  [[ $rc -ne 0 ]] && { status=1; echo "bench exit $rc"; tail -n 20 "$out/bench-1.4b.log"; }
  cat "$out/bench-1.4b.md"
fi
exit $status
