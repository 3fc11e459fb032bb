#!/usr/bin/env bash
# libFuzzer runs of the harnesses in fuzz/ (one per parser of outside input), built by the
# `fuzz` preset (clang, AddressSanitizer + UndefinedBehaviorSanitizer + coverage) in build/fuzz.
#
#   bash scripts/fuzz.sh smoke [SECONDS]   # each harness SECONDS (default 5): the test command's run
#   bash scripts/fuzz.sh long [RUNS] [NAME...]  # each harness RUNS executions (default 10000000),
#                                          # one at a time, corpus kept in build/fuzz/corpus/NAME
#   bash scripts/fuzz.sh build             # only build the harnesses
#
# A crash, sanitizer report, leak, out-of-memory or hang (an input running > 10 s) fails the run;
# the input is kept under build/fuzz/findings/NAME/ and the log under build/fuzz/logs/NAME.log.
# Prints one line per harness: executions, seconds, new corpus size, result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode="${1:-smoke}"
shift || true
harnesses=(run_config model_config safetensors_header shard_header tokenizer_model hf_config
           hf_index train_state http_request)
jobs="${DIFFTX_JOBS:-$(nproc)}"
build=build/fuzz

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake --preset fuzz "${launcher[@]}" >/dev/null
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
echo "fuzz: building ${#targets[@]} harnesses in $build"
cmake --build --preset fuzz -j "$jobs" --target "${targets[@]}" >"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log"; echo "fuzz: build failed (log: $build/build.log)"; exit 1; }
[ "$mode" = build ] && exit 0

case "$mode" in
  smoke) limit=(-max_total_time="${1:-5}"); selected=("${harnesses[@]}") ;;
  long)
    limit=(-runs="${1:-10000000}")
    shift || true
    selected=("$@")
    [ ${#selected[@]} -eq 0 ] && selected=("${harnesses[@]}")
    ;;
  *) echo "usage: $0 smoke [SECONDS] | long [RUNS] [NAME...] | build" >&2; exit 2 ;;
esac

export OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$build/logs" "$build/findings"
status=0
for h in "${selected[@]}"; do
  seeds=fuzz/corpus/$h
  if [ "$mode" = long ]; then
    work=$build/corpus/$h
    mkdir -p "$work"
  else
    work=$(mktemp -d)
  fi
  mkdir -p "$build/findings/$h"
  dict=()
  [ -f "fuzz/dicts/$h.dict" ] && dict=(-dict="fuzz/dicts/$h.dict")
  log=$build/logs/$h.log
  start=$(date +%s)
  rc=0
  "$build/fuzz/fuzz_$h" "$work" "$seeds" "${limit[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$build/findings/$h/" >"$log" 2>&1 || rc=$?
  seconds=$(( $(date +%s) - start ))
  runs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n 1 || true)
  units=$(find "$work" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    result="ok (0 crashes, 0 hangs)"
  else
    status=1
    what=$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+[^(]*|runtime error: .*|ALARM: working on the last Unit for [0-9]+ seconds|out-of-memory' "$log" || true)
    result="FAILED ($what); input under $build/findings/$h/, log $log"
  fi
  printf 'fuzz: %-20s %12s executions in %5ss, corpus %5s inputs: %s\n' "$h" "${runs:-?}" "$seconds" "$units" "$result"
  [ "$mode" = long ] || rm -rf "$work"
done
exit $status
