#!/usr/bin/env bash
# `difftx eval` on a GPU machine in one call: the CUDA probe tests (probe ops and the CUDA probe
# path against the CPU), then every eval task with --device cuda on a ~125M DIFF V1 model and its
# matched softmax baseline (a short training run of configs/gpt-125m-*.json on the Brown corpus),
# the same tasks at small budgets on the CPU backend for wall-time comparison, and one report.
#
# On the build machine (Debian 12 + nvcc, no GPU), from the repository root:
#   cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a
#   cmake --build --preset cuda --target difftx_cli test_cuda_probe test_cuda_backend_ops
#   scripts/gpu/run_eval_suite.sh --stage build/cuda      # binaries + shared libs -> .carry/eval
# On the GPU machine (carry .carry/eval and data/npm, the npm-installed Brown corpus):
#   scripts/gpu/run_eval_suite.sh [all|tests|tasks]       # STEPS=150 CPU=1 by default
# Results land in $OUT (or ./gpu-out): timings.txt (wall seconds per task and device), report.html
# (every result), eval-results.tar.gz (the results.json files), logs.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/eval

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  cp "$build/difftx" "$build/tests/cuda/test_cuda_probe" "$stage/bin/"
  [[ -x $build/tests/cuda/test_cuda_backend_ops ]] && cp "$build/tests/cuda/test_cuda_backend_ops" "$stage/bin/"
  # libraries the GPU image (Ubuntu + CUDA, OpenBLAS and the GCC runtimes present) lacks
  for lib in libfmt.so.9 libsentencepiece.so.0 libprotobuf-lite.so.32; do
    path=$(ldd "$stage/bin/difftx" | awk -v l="$lib" '$1 == l { print $3; exit }')
    [[ -n $path ]] && cp -L "$path" "$stage/lib/"
  done
  strip --strip-debug "$stage"/bin/* 2>/dev/null
  du -sh "$stage"
  exit 0
fi

what=${1:-all}
out=${OUT:-$root/gpu-out}
steps=${STEPS:-150}
cpu=${CPU:-1}
mkdir -p "$out"
export LD_LIBRARY_PATH=$stage/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export DIFFTX_NPM_DIR=$root/data/npm
difftx=$stage/bin/difftx
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
status=0

if [[ $what == tests || $what == all ]]; then
  echo "==== test_cuda_probe"
  timeout 300 "$stage/bin/test_cuda_probe" > "$out/test_cuda_probe.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) +\]|tests? from .* ran|Failure|error" "$out/test_cuda_probe.log" | head -n 30
  if [[ -x $stage/bin/test_cuda_backend_ops ]]; then
    echo "==== test_cuda_backend_ops (probe op cases)"
    timeout 200 "$stage/bin/test_cuda_backend_ops" --gtest_filter='*probe*' > "$out/test_cuda_ops_probe.log" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED) +\]|tests? from .* ran|Failure" "$out/test_cuda_ops_probe.log" | head -n 20
  fi
fi

# Runs `difftx eval TASK` and records its wall time: time_task <device> <name> <task> <args...>
time_task() {
  local device=$1 name=$2 task=$3
  shift 3
  local t0=$(date +%s%N)
  timeout 240 "$difftx" eval "$task" --checkpoint "$work/diff" --checkpoint "$work/base" --device "$device" \
    --data data/brown-50k --out "$out/eval/$device-$name" --progress lines "$@" > "$out/logs/$device-$name.log" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf "%-6s %-16s %6d.%01d s  rc=%d\n" "$device" "$name" $((ms / 1000)) $((ms % 1000 / 100)) "$rc" | tee -a "$out/timings.txt"
  [[ $rc -ne 0 ]] && { status=1; tail -n 5 "$out/logs/$device-$name.log"; }
}

# Packs the results so far: one report of every result, the results and logs as a tarball.
pack() {
  "$difftx" eval report "$out/eval" --out "$out/report.html" > /dev/null 2>&1 || echo "report failed"
  tar -czf "$out/eval-results.tar.gz" -C "$out" eval logs 2> /dev/null
}

if [[ $what == tasks || $what == all ]]; then
  work=/tmp/difftx-eval-work
  mkdir -p "$work" "$out/logs" "$out/eval"
  cd "$root"
  echo "==== data prepare (vocab 50304) and two short training runs ($steps steps)"
  t0=$(date +%s)
  # Carried data is used as it is (its 50K-piece tokenizer takes minutes to train).
  if [[ -f data/brown-50k/meta.json ]]; then
    "$difftx" data info data/brown-50k > "$out/logs/prepare.log" 2>&1 || status=1
  else
    timeout 240 "$difftx" data prepare --out data/brown-50k --vocab-size 50304 --progress none \
      > "$out/logs/prepare.log" 2>&1 || status=1
  fi
  tail -n 4 "$out/logs/prepare.log"
  for arm in diff-v1:diff softmax:base; do
    cfg=configs/gpt-125m-${arm%%:*}.json
    timeout 300 "$difftx" train --config "$cfg" --device cuda --steps "$steps" --out "$work/${arm##*:}" \
      > "$out/logs/train-${arm##*:}.log" 2>&1 || status=1
    grep -iE "val" "$out/logs/train-${arm##*:}.log" | tail -n 1
  done
  echo "setup (prepare + train): $(( $(date +%s) - t0 )) s" | tee "$out/timings.txt"
  echo "==== eval on cuda (125M pair)"
  time_task cuda ppl ppl --context 1024 --batch 8
  time_task cuda outliers outliers --tokens 400000 --context 1024 --batch 4
  time_task cuda quant quant-logits --tokens 32768 --context 1024 --batch 4 --task needle \
    --needles 1:1,4:2 --samples 10 --digits 7
  time_task cuda quant-head quant-logits --tokens 32768 --context 1024 --batch 4 --per-head
  time_task cuda needle needle --needles 1:1,2:2,4:2,6:2 --samples 50 --digits 7
  time_task cuda icl icl --shots 0,1,4,16,32 --permutations 3 --icl-test 50 --icl-classes 4
  time_task cuda attention-map attention-map --layer 5 --head 0 --prompt "The jury said it did \
find that many of Georgia's registration and election laws are outmoded or inadequate and often ambiguous."
  pack
  if [[ $cpu == 1 ]]; then
    echo "==== the same small tasks on cuda and on the cpu backend (125M pair, $(nproc) cores)"
    for device in cuda cpu; do
      time_task $device small-ppl ppl --context 512 --max-tokens 1024 --batch 2
      time_task $device small-outliers outliers --tokens 1024 --context 512 --batch 2
      time_task $device small-quant quant-logits --tokens 512 --context 256 --bits 16,4
      time_task $device small-needle needle --needles 1:1 --depths 0,100 --samples 1 --lengths 300 --digits 7
      time_task $device small-icl icl --shots 0,2 --permutations 2 --icl-test 8 --icl-classes 4
    done
    pack
  fi
  echo "==== wall time per task"
  cat "$out/timings.txt"
  rm -rf "$out/eval" "$out/logs"
fi
exit $status
