#!/usr/bin/env bash
# Where a graph-launched decode step's time goes, with PDL overlap included: `difftx bench` at
# batch 1 (and 8), context 512, with the CUPTI kernel tracer injected (bench/cuda/tools/
# kernel_trace.cpp, staged as lib/libdifftx_kernel_trace.so; the device image has no Nsight
# Systems), then scripts/gpu/trace_table.py over the decode steps (kernels per step, mean
# duration, step wall time). Needs the staged engine binaries (.carry/engine or its archive).
#   scripts/gpu/trace_decode.sh            (tables and logs in $OUT)
# Environment: CONFIGS (default: the 125M DIFF V1 and the 1.4B shape), BATCHES (default "1 8"),
# TRACE_ENV (extra environment for the traced runs, e.g. DIFFTX_GEMV_PRELOAD=0), BENCH_FLAGS
# (extra `difftx bench` flags, e.g. --no-lookahead), TAG (file suffix), BIN (the difftx binary to
# trace, default the staged one: another build's, to compare kernels in one call).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/profile-out}
mkdir -p "$out"
[[ -d .carry/engine ]] || { mkdir -p .carry/engine && tar -C .carry/engine -xzf .carry/engine.tar.gz; }
bin=.carry/engine/bin
difftx=${BIN:-$bin/difftx}
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
tracer=$root/.carry/engine/lib/libdifftx_kernel_trace.so
[[ -f $tracer ]] || { echo "no staged kernel tracer ($tracer)"; exit 1; }
configs=${CONFIGS:-"configs/gpt-125m-diff-v1.json bench/engine/diff-1.4b.json"}
tag=${TAG:-}
for c in $configs; do
  name=$(basename "$c" .json)
  for b in ${BATCHES:-1 8}; do
    csv=/tmp/trace-$name-b$b$tag.csv
    echo "==== kernel trace: $name, batch $b, context 512 ${TRACE_ENV:-}"
    env ${TRACE_ENV:-} CUDA_INJECTION64_PATH="$tracer" DIFFTX_KERNEL_TRACE="$csv" timeout 150 \
      "$difftx" bench --config "$c" --device cuda --batch "$b" --context 512 --gen 32 ${BENCH_FLAGS:-} \
      > "$out/trace-$name-b$b$tag.log" 2>&1
    echo "exit $?; $(grep -E '^\| .* tg' "$out/trace-$name-b$b$tag.log" | head -n 1)"
    python3 scripts/gpu/trace_table.py "$csv" | tee "$out/trace-$name-b$b$tag.txt"
    xz -f "$csv" && mv "$csv.xz" "$out/"
  done
done
