#!/usr/bin/env bash
# Long libFuzzer runs of every harness at once on a machine with cores to spare (the GPU machine
# beside a GPU job): scripts/fuzz.sh long runs them one after another on the build machine; this
# runs the same binaries in parallel from a staged folder, several processes per slow harness.
#
# Stage on the build machine (the `fuzz` preset: clang, ASan + UBSan + coverage):
#   bash scripts/fuzz.sh build && scripts/gpu/run_fuzz_long.sh --stage build/fuzz   # -> .carry/fuzz
# Run (OUT receives each harness's logs and summary.txt):
#   scripts/gpu/run_fuzz_long.sh .carry/fuzz [RUNS] [SECONDS]   # defaults 10000000 and 420
# Each harness runs PROCS processes (libFuzzer -jobs/-workers sharing one corpus, default 1;
# FUZZ_PROCS="run_config=6 hf_config=5" sets them), each stopping at RUNS / PROCS executions or
# SECONDS, whichever comes first; the summary gives the executions of all its processes,
# seconds and the result (a crash, sanitizer report, leak or hang fails it). FUZZ_NICE (default
# 10) keeps them below a GPU job's host threads.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
harnesses=(run_config model_config safetensors_header shard_header tokenizer_model hf_config
  hf_index train_state http_request)
# FUZZ_HARNESSES="a b" runs only those (staging always takes every harness)
if [[ ${1:-} != --stage && -n ${FUZZ_HARNESSES:-} ]]; then read -ra harnesses <<< "$FUZZ_HARNESSES"; fi

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <fuzz build dir>}
  stage=$root/.carry/fuzz
  rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib" "$stage/corpus" "$stage/dicts"
  for h in "${harnesses[@]}"; do
    bin=$(find "$build" -type f -name "fuzz_$h" -perm -u+x | head -n 1)
    [[ -n $bin ]] || { echo "run_fuzz_long: no fuzz_$h under $build: bash scripts/fuzz.sh build" >&2; exit 1; }
    cp "$bin" "$stage/bin/"
    cp -r "$root/fuzz/corpus/$h" "$stage/corpus/"
    [[ -f $root/fuzz/dicts/$h.dict ]] && mkdir -p "$stage/dicts" && cp "$root/fuzz/dicts/$h.dict" "$stage/dicts/"
  done
  ldd "$stage"/bin/* | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    while read -r name path; do
      case $name in
        libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | libgcc_s.so*) ;;
        libopenblas* | libgfortran* | libquadmath* | libgomp*) ;;
        *) cp -L "$path" "$stage/lib/$name" ;;
      esac
    done
  strip --strip-debug "$stage"/bin/* 2> /dev/null
  du -sh "$stage"
  exit 0
fi

stage=$(cd "${1:?usage: $0 <staged folder> [RUNS] [SECONDS]}" && pwd)
runs=${2:-10000000}
seconds=${3:-420}
out=${OUT:-$root/fuzz-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$stage/lib:${LD_LIBRARY_PATH:-}
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
work=$(mktemp -d /tmp/difftx-fuzz.XXXXXX)
procs_of() {
  local kv
  for kv in ${FUZZ_PROCS:-}; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done
  echo 1
}
start=$SECONDS
for h in "${harnesses[@]}"; do
  mkdir -p "$work/corpus/$h" "$work/findings/$h" "$work/run/$h"
  cp -r "$stage/corpus/$h/." "$work/corpus/$h/"
  p=$(procs_of "$h")
  dict=()
  [[ -f $stage/dicts/$h.dict ]] && dict=(-dict="$stage/dicts/$h.dict")
  # -jobs: each process logs to fuzz-<i>.log in the working folder
  (cd "$work/run/$h" && nice -n "${FUZZ_NICE:-10}" "$stage/bin/fuzz_$h" -jobs="$p" -workers="$p" \
    -runs=$(((runs + p - 1) / p)) -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/findings/$h/" "${dict[@]}" "$work/corpus/$h" \
    > "$out/$h.log" 2>&1) &
done
wait
elapsed=$((SECONDS - start))
status=0
{
  printf '%-20s %6s %12s %8s %10s %s\n' harness procs executions seconds exec/s result
  for h in "${harnesses[@]}"; do
    cat "$work/run/$h"/fuzz-*.log >> "$out/$h.log" 2> /dev/null
    execs=$(grep -ohE 'stat::number_of_executed_units: *[0-9]+' "$work/run/$h"/fuzz-*.log 2> /dev/null |
      grep -oE '[0-9]+$' | awk '{ s += $1 } END { print s + 0 }')
    result=ok
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' \
      "$work/run/$h"/fuzz-*.log 2> /dev/null || [[ -n $(ls -A "$work/findings/$h") ]]; then
      result="FAILED (findings: $(ls "$work/findings/$h" | head -n 3 | tr '\n' ' '))"
      mkdir -p "$out/findings" && cp "$work/findings/$h"/* "$out/findings/" 2> /dev/null
      status=1
    fi
    rate=$((elapsed > 0 ? execs / elapsed : 0))
    printf '%-20s %6s %12s %8s %10s %s\n' "$h" "$(procs_of "$h")" "$execs" "$elapsed" "$rate" "$result"
  done
} | tee "$out/summary.txt"
exit $status
