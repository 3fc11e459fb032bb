#!/usr/bin/env bash
# Long libFuzzer runs of every harness at once, one core each, on a machine with cores to spare
# (the GPU machine beside a GPU job): scripts/fuzz.sh long runs them one after another on the
# build machine; this runs the same binaries in parallel from a staged folder.
#
# Stage on the build machine (the `fuzz` preset: clang, ASan + UBSan + coverage):
#   bash scripts/fuzz.sh build && scripts/gpu/run_fuzz_long.sh --stage build/fuzz   # -> .carry/fuzz
# Run (OUT receives one log per harness and summary.txt):
#   scripts/gpu/run_fuzz_long.sh .carry/fuzz [RUNS] [SECONDS]   # defaults 10000000 and 420
# Each harness stops at RUNS executions or SECONDS, whichever comes first; the summary gives
# executions, seconds and the result (a crash, sanitizer report, leak or hang fails it).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
harnesses=(run_config model_config safetensors_header shard_header tokenizer_model hf_config
  hf_index train_state http_request)

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <fuzz build dir>}
  stage=$root/.carry/fuzz
  rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib" "$stage/corpus"
  for h in "${harnesses[@]}"; do
    bin=$(find "$build" -type f -name "fuzz_$h" -perm -u+x | head -n 1)
    [[ -n $bin ]] || { echo "run_fuzz_long: no fuzz_$h under $build: bash scripts/fuzz.sh build" >&2; exit 1; }
    cp "$bin" "$stage/bin/"
    cp -r "$root/fuzz/corpus/$h" "$stage/corpus/"
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

stage=${1:?usage: $0 <staged folder> [RUNS] [SECONDS]}
runs=${2:-10000000}
seconds=${3:-420}
out=${OUT:-$root/fuzz-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$stage/lib:${LD_LIBRARY_PATH:-}
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
work=$(mktemp -d /tmp/difftx-fuzz.XXXXXX)
for h in "${harnesses[@]}"; do
  mkdir -p "$work/corpus/$h" "$work/findings/$h"
  cp -r "$stage/corpus/$h/." "$work/corpus/$h/"
  "$stage/bin/fuzz_$h" -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/findings/$h/" "$work/corpus/$h" \
    > "$out/$h.log" 2>&1 &
done
wait
status=0
{
  printf '%-20s %12s %8s %10s %s\n' harness executions seconds exec/s result
  for h in "${harnesses[@]}"; do
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$out/$h.log" | grep -oE '[0-9]+$' | tail -n 1)
    secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$out/$h.log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' | tail -n 1)
    result=ok
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$out/$h.log" ||
      [[ -n $(ls -A "$work/findings/$h") ]]; then
      result="FAILED (findings: $(ls "$work/findings/$h" | head -n 3 | tr '\n' ' '))"
      status=1
    fi
    rate=$([[ -n ${execs:-} && -n ${secs:-} && ${secs:-0} -gt 0 ]] && echo $((execs / secs)) || echo -)
    printf '%-20s %12s %8s %10s %s\n' "$h" "${execs:--}" "${secs:--}" "$rate" "$result"
  done
} | tee "$out/summary.txt"
exit $status
