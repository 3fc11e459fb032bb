#!/usr/bin/env bash
# The long crash-consistency run: `difftx train` killed with SIGKILL at KILLS random moments (half
# aimed inside a checkpoint write), resumed each time, and compared byte for byte with an
# uninterrupted run (final model.safetensors and train_state.safetensors). CI runs the same test
# with 4 kills. Prints the seed; rerun a failure with DIFFTX_KILL_SEED=<seed>.
#   bash scripts/crash-test.sh [KILLS]                 (default 20, one random seed)
#   bash scripts/crash-test.sh KILLS FIRST-LAST        a sweep over seeds FIRST..LAST, e.g. 20 3001-3020;
#                                                      prints one line per seed and a summary
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${DIFFTX_JOBS:-$(nproc)}"
cmake --preset cpu >/dev/null
cmake --build --preset cpu -j "$jobs" --target difftx_cli test_crash_consistency
export DIFFTX_KILL_COUNT="${1:-20}"
test_bin=./build/cpu/tests/safety/test_crash_consistency
if [[ -z ${2:-} ]]; then
  exec "$test_bin" --gtest_brief=0
fi
[[ $2 =~ ^([0-9]+)-([0-9]+)$ ]] || { echo "crash-test: seeds must be FIRST-LAST, got '$2'" >&2; exit 2; }
passed=0 total=0 kills=0 inside=0
for seed in $(seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"); do
  total=$((total + 1))
  log=$(DIFFTX_KILL_SEED=$seed "$test_bin" 2>&1) && ok=1 || ok=0
  line=$(grep -oE '[0-9]+ kills \([0-9]+ inside a checkpoint write\), [0-9]+ launches' <<< "$log" || true)
  if ((ok)); then
    passed=$((passed + 1))
    read -r k _ i _ <<< "$(grep -oE '[0-9]+ kills \([0-9]+' <<< "$line" | tr -d '(')"
    kills=$((kills + k)) inside=$((inside + i))
    echo "crash-test: seed $seed: identical ($line)"
  else
    echo "crash-test: seed $seed: FAILED"
    grep -E 'Failure|differs|error' <<< "$log" | head -n 5
  fi
done
echo "crash-test: $passed/$total seeds bit-identical after resume; $kills kills, $inside inside a checkpoint write"
((passed == total))
