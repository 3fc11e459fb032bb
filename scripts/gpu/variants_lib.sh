# Helpers shared by the variant scripts (attention_variants.sh, gemv_variants.sh), sourced after
# they set B (the staged binaries' folder) and o (the log folder): a variant's settings as env
# words, a gtest log's summary, and the engine's three GPU test binaries in one pass.
# shellcheck shell=bash

# settings SETTINGS: VAR=VALUE words for env ("-": none; else VAR:VALUE,VAR:VALUE).
settings() { [[ $1 == - ]] || tr ',:' ' =' <<< "$1"; }

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
