#!/usr/bin/env bash
# The test command: set-up (idempotent), the CPU test suite, and, where nvcc exists, the CUDA
# build plus its GPU-labelled tests (reported as skipped when no GPU is present).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# OpenMP and OpenBLAS threads busy-wait between parallel regions by default; on a 2-core
# machine the two pools then steal each other's cores (bench/README.md: 4.2k -> 6.9k tok/s).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export DIFFTX_BUILD_CUDA="${DIFFTX_BUILD_CUDA:-1}"
fi
bash scripts/setup.sh
bash scripts/fetch-openai-sdk.sh  # the OpenAI SDK for the `difftx serve` client tests
jobs="${DIFFTX_JOBS:-$(nproc)}"
status=0
echo "test: CPU suite (build/cpu)"
ctest --preset cpu -j "$jobs" -L cpu || status=1
# A few seconds of libFuzzer per parser (clang build in build/fuzz; DIFFTX_FUZZ_SECONDS=0 skips
# it); scripts/fuzz.sh long for long runs.
if [ "${DIFFTX_FUZZ_SECONDS:-5}" != 0 ]; then
  echo "test: fuzz smoke run (build/fuzz)"
  bash scripts/fuzz.sh smoke "${DIFFTX_FUZZ_SECONDS:-5}" || status=1
fi
if [ "${DIFFTX_BUILD_CUDA:-0}" = "1" ]; then
  echo "test: GPU suite (build/cuda, label gpu; skipped without a GPU)"
  ctest --preset cuda -j "$jobs" -L gpu || status=1
fi
exit $status
