#!/usr/bin/env bash
# Stages every GPU script's binaries at once and packs them into one archive that fits what the
# device tool carries (64 MiB): each script's own --stage (run_gpu_suite, run_engine_suite,
# run_eval_suite, run_studies, bench/serve, bench/dist), one shared set of the shared libraries
# the GPU image lacks in every stage's lib/, identical files hard-linked, then tar + xz.
#
# On the build machine (no GPU), after building the CUDA tree for Hopper:
#   cmake --preset cuda -B build/cuda90 -DCMAKE_CUDA_ARCHITECTURES=90a && cmake --build build/cuda90
#   scripts/gpu/stage_all.sh build/cuda90          # -> .carry/all.tar.xz (+ data/brown, data/npm)
# On the GPU machine (carry .carry/all.tar.xz, data/brown and data/npm):
#   scripts/gpu/stage_all.sh --unpack              # -> .carry/{gpu,engine,eval,study,serve,dist}
# then run the scripts as their headers say.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
carry=.carry
stages=(gpu engine eval study serve dist)

if [[ ${1:-} == --unpack ]]; then
  [[ -f $carry/all.tar.xz ]] || { echo "stage_all: no $carry/all.tar.xz: stage on the build machine first" >&2; exit 1; }
  tar -C "$carry" -xJf "$carry/all.tar.xz"
  for s in "${stages[@]}"; do [[ -d $carry/$s ]] || echo "stage_all: warning: $carry/$s missing"; done
  du -sh "$carry"
  exit 0
fi

build=${1:?usage: $0 <cuda build dir> | --unpack}
[[ -x $build/difftx ]] || { echo "stage_all: no $build/difftx: build the CUDA tree first" >&2; exit 1; }
rm -rf "$carry"
bash scripts/gpu/run_gpu_suite.sh --stage "$build" > /dev/null
bash scripts/gpu/run_engine_suite.sh --stage "$build" > /dev/null
mkdir -p "$carry/engine" && tar -C "$carry/engine" -xzf "$carry/engine.tar.gz" && rm "$carry/engine.tar.gz"
bash scripts/gpu/run_eval_suite.sh --stage "$build" > /dev/null
bash scripts/gpu/run_studies.sh --stage "$build" > /dev/null
bash bench/serve/run_gpu_serve_bench.sh --stage "$build" > /dev/null
bash bench/dist/run_dist_gpu.sh --stage "$build" > /dev/null

# One library set for every stage: what the binaries resolve here, less the C/C++ runtimes,
# OpenBLAS, OpenMP and the CUDA libraries (the image has those).
libs=$(mktemp -d)
find "$carry" -type f -perm -u+x ! -name '*.so*' -print0 | xargs -0 ldd 2> /dev/null |
  awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u | while read -r name path; do
    case $name in
      libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | libgcc_s.so*) ;;
      libcublas* | libcuda.so* | libcudart* | libnccl* | libopenblas* | libgfortran* | libquadmath* | libgomp*) ;;
      *) cp -L "$path" "$libs/$name" ;;
    esac
  done
for s in "${stages[@]}"; do mkdir -p "$carry/$s/lib" && cp -n "$libs"/* "$carry/$s/lib/"; done
# NCCL (218 MB) is in the image's CUDA toolkit; a stage's own copy would break the carry limit.
find "$carry" -name 'libnccl*' -delete
rm -rf "$libs"

# Identical files once: hard links (tar stores a linked file once).
declare -A first
while IFS= read -r -d '' f; do
  sum=$(sha1sum "$f" | cut -d' ' -f1)
  if [[ -n ${first[$sum]:-} ]]; then ln -f "${first[$sum]}" "$f"; else first[$sum]=$f; fi
done < <(find "$carry" -type f -print0)
tar -C "$carry" -cf - "${stages[@]}" | xz -T2 -6 > "$carry/all.tar.xz.tmp"
mv "$carry/all.tar.xz.tmp" "$carry/all.tar.xz"
for s in "${stages[@]}"; do rm -rf "${carry:?}/$s"; done
du -sh "$carry/all.tar.xz"
