#!/usr/bin/env bash
# `difftx serve` on one GPU: throughput and latency of the 125M DIFF V1 model and its matched
# softmax baseline at 1, 16, 64 and 256 concurrent streaming clients (bench_serve), beside
# Hugging Face transformers `generate` on the same weights (hf_generate_bench.py), in one call.
#
# 1. On the build machine (Debian 12 + nvcc; docs/serve.md, "GPU benchmark"):
#      cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a && cmake --build --preset cuda --target difftx_cli bench_serve
#      ./build/cpu/difftx data prepare --vocab-size 50304 --out data/brown-50k   # tokenizer + shards of the presets
#      bench/serve/run_gpu_serve_bench.sh --stage build/cuda    # binaries + shared libraries -> .carry/serve
# 2. On the GPU machine (carry .carry/serve and data/brown-50k):
#      bench/serve/run_gpu_serve_bench.sh [--steps 40] [--concurrency 1,16,64,256] [--requests-per-client 2]
#    Trains each preset for --steps steps (real checkpoints; the speed does not depend on how
#    trained they are: every request generates exactly --max-tokens tokens), exports it with
#    `difftx export hf`, serves it with `difftx serve --device cuda`, runs bench_serve against it,
#    stops it with SIGTERM, then runs transformers on the export. Logs, JSON and table.md go to
#    $OUT (default out/serve-bench); the table is printed last.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
stage=.carry/serve

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/lib"
  cp "$build/difftx" "$build/bench/serve/bench_serve" "$stage/"
  # Every resolved library except the C/C++ runtimes, OpenBLAS (the image has it; 36 MB would
  # break the carry limit) and the CUDA libraries of the image.
  ldd "$stage/difftx" "$stage/bench_serve" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    while read -r name path; do
      case $name in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        libcublas*|libcuda.so*|libcudart*|libopenblas*|libgfortran*|libquadmath*|libgomp*) ;;
        *) cp -L "$path" "$stage/lib/$name" ;;
      esac
    done
  strip --strip-debug "$stage/difftx" "$stage/bench_serve" 2>/dev/null
  ls "$stage/lib"
  du -sh "$stage"
  exit 0
fi

steps=40
concurrency=1,16,64,256
requests=2
prompt_tokens=128
max_tokens=128
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --requests-per-client) requests=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    *) echo "run_gpu_serve_bench: error: unknown argument $1"; exit 1 ;;
  esac
done

OUT=${OUT:-out/serve-bench}
mkdir -p "$OUT"
[[ -x $stage/difftx && -x $stage/bench_serve ]] ||
  { echo "run_gpu_serve_bench: error: no $stage/difftx and bench_serve: run --stage on the build machine and carry $stage"; exit 1; }
[[ -f data/brown-50k/tokenizer.model ]] ||
  { echo "run_gpu_serve_bench: error: no data/brown-50k: prepare it on the build machine (see the header) and carry it"; exit 1; }
export LD_LIBRARY_PATH="$root/$stage/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$stage/difftx" | grep -q "not found"; then
  ldd "$stage/difftx" | grep "not found"
  echo "run_gpu_serve_bench: error: missing shared libraries (above)"
  exit 1
fi
# GET with python3 (the GPU image may lack curl): prints the body, fails on errors.
http_get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1" 2>/dev/null; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
serve_args=()
hf_args=()
max_batch=$(echo "$concurrency" | tr ',' '\n' | sort -n | tail -n 1)

for preset in gpt-125m-diff-v1 gpt-125m-softmax; do
  run=$OUT/work/$preset
  echo "==== $preset: train $steps steps, export hf"
  if ! timeout 300 "$stage/difftx" train --config "configs/$preset.json" --device cuda --steps "$steps" \
       --out "$run" --quiet > "$OUT/$preset.train.log" 2>&1; then
    tail -n 20 "$OUT/$preset.train.log"; status=1; continue
  fi
  tail -n 2 "$OUT/$preset.train.log"
  checkpoint=$(ls -d "$run"/checkpoints/step_* | sort -V | tail -n 1)
  rm -rf "$OUT/work/hf-$preset"
  "$stage/difftx" export hf --checkpoint "$checkpoint" --out "$OUT/work/hf-$preset" > "$OUT/$preset.export.log" 2>&1 ||
    { cat "$OUT/$preset.export.log"; status=1; }

  echo "==== $preset: difftx serve --device cuda, bench_serve at $concurrency clients"
  "$stage/difftx" serve --checkpoint "$run" --device cuda --port 0 --model-name "$preset" \
    --max-batch "$max_batch" --max-queue $((2 * max_batch)) > "$OUT/$preset.serve.log" 2>&1 &
  server=$!
  port=""
  for _ in $(seq 1 600); do
    port=$(grep -oE "listening on http://[^:]+:[0-9]+" "$OUT/$preset.serve.log" | grep -oE "[0-9]+$" | head -n 1)
    [[ -n $port ]] && http_get "http://127.0.0.1:$port/health" > /dev/null && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  if ! http_get "http://127.0.0.1:${port:-0}/health" > /dev/null; then
    echo "difftx serve did not become ready:"; tail -n 20 "$OUT/$preset.serve.log"; status=1
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; continue
  fi
  timeout 900 "$stage/bench_serve" --port "$port" --label "$preset" --concurrency "$concurrency" \
    --requests-per-client "$requests" --prompt-tokens "$prompt_tokens" --max-tokens "$max_tokens" \
    --out "$OUT/$preset.serve.json" 2>&1 | tee "$OUT/$preset.bench.log" || status=1
  http_get "http://127.0.0.1:$port/metrics" > "$OUT/$preset.metrics.txt"
  kill -TERM "$server"
  wait "$server"
  echo "difftx serve exit code $? after SIGTERM"
  serve_args+=("$preset=$OUT/$preset.serve.json")

  echo "==== $preset: transformers generate on the same weights"
  PYTHONUNBUFFERED=1 timeout 900 python3 bench/serve/hf_generate_bench.py --model "$OUT/work/hf-$preset" \
    --label "$preset" --batch "$concurrency" --prompt-tokens "$prompt_tokens" --max-tokens "$max_tokens" \
    --out "$OUT/$preset.hf.json" 2>&1 | grep -v Warning | tee "$OUT/$preset.hf.log" || status=1
  hf_args+=("$preset=$OUT/$preset.hf.json")
  rm -rf "$run/checkpoints" "$OUT/work/hf-$preset"
done

echo
python3 bench/serve/serve_table.py --serve "${serve_args[@]}" --hf "${hf_args[@]}" | tee "$OUT/table.md"
exit $status
