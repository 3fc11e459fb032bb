#!/usr/bin/env bash
# Checks that every tracked C++/CUDA source follows the repository's .clang-format (Debian's
# clang-format 14, installed by scripts/install-deps.sh). Prints the files that differ and
# exits 1 if any does. To fix: `tools/checks/check_format.sh --fix`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
format=$(command -v clang-format-14 || command -v clang-format || true)
[[ -n $format ]] || { echo "check_format: clang-format not found (run scripts/install-deps.sh)"; exit 1; }
mapfile -t files < <(git ls-files -- '*.cpp' '*.h' '*.cu' '*.cuh' '*.hpp' '*.cc')
if [[ ${1:-} == --fix ]]; then
  "$format" -i --style=file "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! "$format" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if (( ${#bad[@]} )); then
  printf 'check_format: %s differs from .clang-format\n' "${bad[@]}"
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ; run tools/checks/check_format.sh --fix"
  exit 1
fi
echo "check_format: ${#files[@]} files follow .clang-format"
