#!/usr/bin/env bash
# The long crash-consistency run: `difftx train` killed with SIGKILL at KILLS random moments (half
# aimed inside a checkpoint write), resumed each time, and compared byte for byte with an
# uninterrupted run (final model.safetensors and train_state.safetensors). CI runs the same test
# with 4 kills. Prints the seed; rerun a failure with DIFFTX_KILL_SEED=<seed>.
#   bash scripts/crash-test.sh [KILLS]        (default 20)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${DIFFTX_JOBS:-$(nproc)}"
cmake --preset cpu >/dev/null
cmake --build --preset cpu -j "$jobs" --target difftx_cli test_crash_consistency
export DIFFTX_KILL_COUNT="${1:-20}"
exec ./build/cpu/tests/safety/test_crash_consistency --gtest_brief=0
