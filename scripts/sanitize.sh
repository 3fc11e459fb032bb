#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer + UndefinedBehaviorSanitizer: the `asan` preset
# (build/asan, every library, tool and test instrumented; any UB report aborts its test), then
# `ctest -L cpu` there. Slow (an instrumented build plus a 2-5x slower suite), so not part of CI.
#   bash scripts/sanitize.sh [ctest arguments...]     e.g.  bash scripts/sanitize.sh -R safety
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${DIFFTX_JOBS:-$(nproc)}"
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake --preset asan "${launcher[@]}" >/dev/null
echo "sanitize: building the asan preset (build/asan)"
cmake --build --preset asan -j "$jobs"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
[ -f scripts/lsan.supp ] && export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp}"
# Tests run without leak detection (ASan and UBSan stay on): the ones that launch Open MPI ranks
# (its plugins are unloaded at MPI_Finalize, so their allocations kept until exit are reported
# as leaks from unknown modules that no suppression can name).
no_leak_check='MpiCommunicator\.|DistTrain\.'
echo "sanitize: CPU suite under ASan + UBSan"
status=0
ctest --preset asan -j "$jobs" -L cpu -E "$no_leak_check" "$@" || status=1
echo "sanitize: the Open MPI rank tests under ASan + UBSan, without leak detection"
ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}" \
  ctest --preset asan -j "$jobs" -L cpu -R "$no_leak_check" "$@" || status=1
exit $status
