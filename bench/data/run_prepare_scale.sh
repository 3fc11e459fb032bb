#!/usr/bin/env bash
# Measures `difftx data prepare` on a generated multi-GB corpus (issue 15): throughput (MB/s of
# input and of text) and peak memory (/usr/bin/time -v), with the machine's load before and
# after. The corpus (make_corpus: plain .txt, .txt.gz and .jsonl.zst files) is generated once
# and kept for reruns.
#   bench/data/run_prepare_scale.sh [GB] [WORK_DIR]     (defaults: 3, /tmp/difftx-prepare-scale)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build/cpu}"
gb="${1:-3}"
work="${2:-/tmp/difftx-prepare-scale}"
corpus="$work/corpus-${gb}gb"
out="$work/prepared"
[ -x "$build/difftx" ] && [ -x "$build/bench/data/make_corpus" ] ||
  { echo "run_prepare_scale: build difftx_cli and make_corpus first (cmake --build --preset cpu --target difftx_cli make_corpus)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "run_prepare_scale: /usr/bin/time is missing (Debian package 'time')" >&2; exit 1; }
mkdir -p "$work"
if [ ! -f "$corpus/.complete" ]; then
  rm -rf "$corpus"
  "$build/bench/data/make_corpus" --out "$corpus" --gigabytes "$gb" --files 300
  touch "$corpus/.complete"
fi
rm -rf "$out"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
/usr/bin/time -v "$build/difftx" data prepare --input "$corpus" --out "$out" --progress lines \
  > "$work/summary.txt" 2> "$work/stderr.txt"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$work/summary.txt"
grep -E "^(sampling text|training tokenizer|encoding): .* in " "$work/stderr.txt" || true
grep -E "Elapsed \(wall clock\)|Maximum resident set size|User time|System time|Percent of CPU" "$work/stderr.txt"
disk=$(du -sb --exclude=.complete "$corpus" | cut -f1)
echo "input on disk: $(awk -v b="$disk" 'BEGIN { printf "%.2f GB", b / 1e9 }')"
