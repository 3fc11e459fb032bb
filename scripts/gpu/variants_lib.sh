# Helpers shared by the variant scripts (attention_variants.sh, gemv_variants.sh), sourced from
# the repository root with `root` set: the staged engine binaries unpacked and the log folders
# made, a variant's settings as env words, a gtest log's summary, and the engine's three GPU test
# binaries in one pass.
# shellcheck shell=bash

# use_staged_engine LOGDIR: unpacks .carry/c.tar.xz into .carry/engine and every other
# .carry/NAME.tar.xz (ref: the reference build; others: more builds to compare) into
# .carry/engine-NAME (every call: a warm machine keeps the folders from the call before, whose
# build may be older), puts the libraries on the loader path, sets B (its binaries), o (LOGDIR)
# and out ($OUT, or gpu-out), and records the GPU and its clocks in $o/gpu.txt.
use_staged_engine() {
  mkdir -p .carry/engine
  [[ -f .carry/c.tar.xz ]] && tar -C .carry/engine -xJf .carry/c.tar.xz
  local archive name
  for archive in .carry/*.tar.xz; do
    name=$(basename "$archive" .tar.xz)
    [[ -f $archive && $name != c ]] || continue
    rm -rf ".carry/engine-$name"
    mkdir -p ".carry/engine-$name" && tar -C ".carry/engine-$name" -xJf "$archive"
  done
  # shellcheck disable=SC2154 # root: set by the sourcing script
  export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
  B=.carry/engine/bin
  o=$1
  out=${OUT:-$root/gpu-out}
  mkdir -p "$o" "$out"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$o/gpu.txt"
}

# settings SETTINGS: VAR=VALUE words for env ("-": none; else VAR:VALUE,VAR:VALUE; a word
# BIN:NAME is not a variable, see bin_for).
settings() { [[ $1 == - ]] || tr ',' '\n' <<< "$1" | grep -v '^BIN:' | tr ':\n' '= '; }

# bin_for SETTINGS: the folder of the binaries a variant runs: $B, or with BIN:NAME among its
# settings another build's (.carry/NAME.tar.xz, binaries only: BIN:ref for the commit before a
# change, other names for more builds; unpacked by use_staged_engine into .carry/engine-NAME;
# they use $B's libraries).
bin_for() {
  local name
  name=$(tr ',' '\n' <<< "$1" | sed -n 's/^BIN://p' | head -n 1)
  if [[ -n $name ]]; then echo ".carry/engine-$name/bin"; else echo "$B"; fi
}

# summary NAME: the pass/fail lines of $o/NAME.log, and its failures if any.
summary() {
  grep -E "^\[  (PASSED|FAILED) +\]|^\[  FAILED" "$o/$1.log" | tail -n 8
  grep -q "^\[  FAILED" "$o/$1.log" && grep -B3 -A12 "Failure" "$o/$1.log" | head -n 40
}

# engine_tests: test_engine_ops_cuda, test_engine_cuda and test_cuda_backend_ops, logs in $o.
engine_tests() {
  local t
  for t in test_engine_ops_cuda test_engine_cuda test_cuda_backend_ops; do
    timeout 200 "$B/$t" > "$o/$t.log" 2>&1
    echo "== $t exit $?"
    summary "$t"
  done
}
