#!/usr/bin/env bash
# The one script the GPU machine runs for the training benchmark: ours (bench_train, the CUDA
# backend) and PyTorch (train_torch.py, bf16 autocast + torch.compile) on the three 125M presets,
# then one table with tokens/s, MFU and the ratios (ours/PyTorch, DIFF V1/baseline). Logs go to
# $OUT (default out/train-bench): gpu.txt, ours.log, torch.log, table.txt; the table is printed last.
#
# Prepare on the build machine (Debian 12, nvcc 13), then carry .carry/bench to the GPU machine:
#   bench/cuda/run_train_bench.sh --stage build/bench-cuda
# copies bench_train and the shared libraries the GPU image (Ubuntu 24.04) may lack (fmt,
# OpenBLAS + Fortran runtime, libgomp, SentencePiece, protobuf-lite, cudart; not cuBLAS, which
# the image has) into .carry/bench. On the GPU machine:
#   bench/cuda/run_train_bench.sh [extra bench_train / train_torch.py args, e.g. --steps 20]
# Without .carry/bench it builds bench_train itself (build/bench-gpu, -DCMAKE_CUDA_ARCHITECTURES=90a).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
stage=.carry/bench
presets=(configs/gpt-125m-diff-v1.json configs/gpt-125m-softmax.json configs/gpt-125m-diff-v2.json)

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/lib"
  cp "$build/bench/cuda/bench_train" "$stage/"
  # Every resolved library except the C runtime and the CUDA math libraries of the image.
  ldd "$stage/bench_train" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' |
    while read -r name path; do
      case $name in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        libcublas*|libcuda.so*) ;;
        *) cp -L "$path" "$stage/lib/$name" ;;
      esac
    done
  ls "$stage/lib"
  du -sh "$stage"
  exit 0
fi

OUT=${OUT:-out/train-bench}
mkdir -p "$OUT"
if [[ -x $stage/bench_train ]]; then
  BIN=$stage/bench_train
  export LD_LIBRARY_PATH="$root/$stage/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  echo "no carried $stage/bench_train: building it (build/bench-gpu)"
  cmake --preset cuda -B build/bench-gpu -DCMAKE_CUDA_ARCHITECTURES=90a -DDIFFTX_WERROR=OFF \
    -DDIFFTX_TESTS=OFF > "$OUT/configure.log" 2>&1 &&
    cmake --build build/bench-gpu -j16 --target bench_train > "$OUT/build.log" 2>&1 ||
    { echo "build failed, see $OUT/build.log"; tail -30 "$OUT/build.log"; exit 1; }
  BIN=build/bench-gpu/bench/cuda/bench_train
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
if ldd "$BIN" | grep -q "not found"; then
  ldd "$BIN" | tee "$OUT/ldd.txt"
  echo "bench_train: missing shared libraries (see above)"
fi
status=0

echo "== ours: bench_train"
timeout ${TRAIN_BENCH_TIMEOUT:-180} "$BIN" --profile "$@" "${presets[@]}" > "$OUT/ours.log" 2>&1 || status=1
grep -v "^RESULT" "$OUT/ours.log"

echo "== PyTorch: train_torch.py"
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
PYTHONUNBUFFERED=1 timeout ${TORCH_BENCH_TIMEOUT:-390} python3 bench/cuda/train_torch.py "$@" \
  "${presets[@]}" > "$OUT/torch.log" 2>&1 || status=1
cat "$OUT/torch.log"
# The table from both logs (printed even when one side failed or was cut off).
echo
python3 bench/cuda/train_torch.py "${presets[@]}" --ours "$OUT/ours.log" \
  --torch-results "$OUT/torch.log" 2>&1 | tee "$OUT/table.txt"
exit $status
