#!/usr/bin/env bash
# Set-up on a fresh machine: Debian packages, the pinned default corpus, and the CPU build.
# With DIFFTX_BUILD_CUDA=1 (the test script sets it when nvcc exists) it also builds the CUDA
# preset, so a CUDA compile error is caught even where no GPU exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${DIFFTX_JOBS:-$(nproc)}"

bash scripts/install-deps.sh
bash scripts/fetch-corpus.sh

echo "setup: building the cpu preset (build/cpu)"
cmake --preset cpu >/dev/null
# DIFFTX_CPU_TARGETS narrows the build (the main job needs only the CLI: difftx_cli).
read -r -a cpu_targets <<< "${DIFFTX_CPU_TARGETS:-all}"
cmake --build --preset cpu -j "$jobs" --target "${cpu_targets[@]}"

if [ "${DIFFTX_BUILD_CUDA:-0}" = "1" ]; then
  echo "setup: building the cuda preset (build/cuda)"
  cmake --preset cuda >/dev/null
  # Only what the GPU suite needs: the library with its CUDA backend, the CLI and the GPU tests.
  targets=(difftx_cli)
  for t in tests/cuda/test_*.cpp tests/cuda/test_*.cu; do
    [ -e "$t" ] && targets+=("$(basename "${t%.*}")")
  done
  cmake --build --preset cuda -j "$jobs" --target "${targets[@]}"
fi
