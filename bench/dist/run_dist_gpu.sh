#!/usr/bin/env bash
# Data-parallel training on one host with 2 GPUs, in ONE call on the GPU machine: the NCCL
# communicator tests, tokens/s of the 125M and ~350M DIFF V1 presets on 1 and 2 GPUs at the same
# per-GPU batch (16 x 1024 tokens, grad_accum 4), the loss curves of 1 GPU x 32 rows and 2 GPUs x
# 16 rows (the same global batch: they must overlay), ZeRO-1 against plain all-reduce, the
# communication time per step (CUDA events around each collective), a killed rank, and the
# scaling table with 4 and 8 GPUs extrapolated from the 2-GPU profile (labelled as such).
#
# On the build machine (Debian 12 + nvcc, no GPU), from the repository root:
#   cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=90a && cmake --build --preset cuda -j2 \
#     --target difftx_cli test_dist_nccl dist_probe
#   ./build/cpu/difftx data prepare --vocab-size 50304 --out data/brown-50k   # once (CPU build)
#   bench/dist/run_dist_gpu.sh --stage build/cuda     # binaries + libraries the image lacks -> .carry/dist
# On the GPU machine (carry .carry/dist and data/brown-50k):
#   bench/dist/run_dist_gpu.sh [steps]                # default 40 steps per run
# Writes under $OUT (default out/dist-gpu): report.md (the tables, also printed last),
# loss_curves.png, scaling.json, logs.tar.gz (every log and metrics.jsonl).
# NVLink multicast stays off: NCCL_NVLS_ENABLE=0 is exported for every process started here.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/dist

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  cp "$build/difftx" "$build/tests/dist/test_dist_nccl" "$build/tests/dist/dist_probe" "$stage/bin/"
  # Libraries the GPU image (Ubuntu 24.04 + CUDA 13) lacks: fmt, SentencePiece, protobuf-lite
  # and Open MPI's (the binary links MPI; GPU ranks never start it). NCCL (218 MB) is not
  # carried: the image has it (CUDA toolkit or the nvidia-nccl wheel); see find_nccl below.
  ldd "$stage/bin/difftx" "$stage/bin/test_dist_nccl" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' |
    sort -u | while read -r name path; do
      case $name in
        libfmt.so*|libsentencepiece.so*|libprotobuf-lite.so*|libmpi*.so*|libopen-rte.so*|libopen-pal.so*|\
        libhwloc.so*|libevent*.so*|libudev.so*|libgtest*.so*) cp -L "$path" "$stage/lib/$name" ;;
      esac
    done
  strip --strip-debug "$stage"/bin/* 2>/dev/null
  ls "$stage/lib"
  du -sh "$stage"
  exit 0
fi

steps=${1:-40}
OUT=${OUT:-$root/out/dist-gpu}
mkdir -p "$OUT"
logs=$(mktemp -d /tmp/difftx-dist-logs.XXXXXX)
runs=/tmp/difftx-dist-runs
rm -rf "$runs" && mkdir -p "$runs"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1

find_nccl() {  # a directory holding libnccl.so.2
  local d
  for d in "$stage/lib" /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
    [[ -e $d/libnccl.so.2 ]] && { echo "$d"; return; }
  done
  d=$(ldconfig -p 2>/dev/null | awk '/libnccl\.so\.2/ { print $NF; exit }')
  [[ -n $d ]] && { dirname "$d"; return; }
  python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null
}
nccl_dir=$(find_nccl)
export LD_LIBRARY_PATH=$stage/lib:${nccl_dir:+$nccl_dir:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
BIN=$stage/bin
export DIFFTX_DIST_PROBE=$BIN/dist_probe  # test_dist_nccl runs the staged probe, not its build path
{
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm --format=csv
  nvidia-smi topo -m
  echo "libnccl: ${nccl_dir:-not found}"
} > "$logs/gpu.txt" 2>&1
cat "$logs/gpu.txt"
if ldd "$BIN/difftx" | grep -q "not found"; then ldd "$BIN/difftx" | grep "not found"; fi
status=0

echo "==== NCCL communicator tests (2 ranks)"
timeout 400 "$BIN/test_dist_nccl" > "$logs/test_dist_nccl.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED|SKIPPED|     OK) " "$logs/test_dist_nccl.log"

# A run config derived from a preset: <preset> <global batch> <out dir> [extra json]
make_config() {
  python3 - "$@" <<'EOF'
import json, sys
preset, batch, out, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
c = json.load(open(preset))
c["data"]["batch_size"] = batch
c["data"]["path"] = "data/brown-50k"
c["train"].update({"steps": steps, "eval_every": 0, "eval_batches": 2, "log_every": 10})
c["schedule"]["warmup_steps"] = min(c["schedule"].get("warmup_steps", 30), steps)
c["output"].update({"dir": out, "checkpoint_every": 0, "keep_last": 1})
json.dump(c, open(out + ".json", "w"), indent=1)
print(out + ".json")
EOF
}

# run <name> <preset> <gpus> <global batch> [train options...]
run() {
  local name=$1 preset=$2 gpus=$3 batch=$4
  shift 4
  local cfg
  cfg=$(make_config "$root/$preset" "$batch" "$runs/$name" "$steps")
  local launch=()
  [[ $gpus -gt 1 ]] && launch=(--nproc-per-node "$gpus")
  echo "==== $name: $gpus GPU(s), global batch $batch x 1024 x grad_accum 4 ($*)"
  local t0=$SECONDS
  (cd "$root" && timeout 300 "$BIN/difftx" train --config "$cfg" --device cuda --quiet "${launch[@]}" "$@") \
    > "$logs/$name.log" 2>&1
  local rc=$?
  [[ $rc -ne 0 ]] && { status=1; tail -n 15 "$logs/$name.log"; }
  cp "$runs/$name/metrics.jsonl" "$logs/$name.metrics.jsonl" 2>/dev/null
  rm -rf "$runs/$name/checkpoints"
  echo "     exit $rc, $((SECONDS - t0)) s"
}

run 125m-1gpu-b16 configs/gpt-125m-diff-v1.json 1 16
run 125m-2gpu-b32 configs/gpt-125m-diff-v1.json 2 32
run 125m-1gpu-b32 configs/gpt-125m-diff-v1.json 1 32
run 125m-2gpu-b32-allreduce configs/gpt-125m-diff-v1.json 2 32 --zero 0
run 350m-1gpu-b16 configs/gpt-350m-diff-v1.json 1 16
run 350m-2gpu-b32 configs/gpt-350m-diff-v1.json 2 32

echo "==== a killed rank: SIGKILL to rank 1 of a 2-GPU run"
kill_cfg=$(make_config "$root/configs/gpt-125m-diff-v1.json" 32 "$runs/kill" 1000)
t0=$SECONDS
(cd "$root" && DIFFTX_RUN_TAG=killtest timeout 180 "$BIN/difftx" train --config "$kill_cfg" --device cuda \
  --quiet --nproc-per-node 2) > "$logs/kill.log" 2>&1 &
launcher=$!
victim=""
for _ in $(seq 1 120); do
  sleep 1
  if [[ $(grep -c '"type":"train"' "$runs/kill/metrics.jsonl" 2>/dev/null) -ge 5 ]]; then
    for p in /proc/[0-9]*; do
      if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx DIFFTX_RUN_TAG=killtest &&
         tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx RANK=1; then victim=${p#/proc/}; fi
    done
    break
  fi
done
if [[ -n $victim ]]; then
  kill -9 "$victim"
  wait "$launcher"
  rc=$?
  echo "     rank 1 (pid $victim) killed; the job exited $rc after $((SECONDS - t0)) s in all"
  grep "difftx: error" "$logs/kill.log"
  [[ $rc -eq 1 ]] || status=1
else
  echo "     rank 1 not found (the run did not reach step 5); see kill.log"
  tail -n 20 "$logs/kill.log"
  kill "$launcher" 2>/dev/null
  wait "$launcher"
  status=1
fi
rm -rf "$runs/kill"

echo "==== report"
python3 "$root/bench/dist/scaling_report.py" --logs "$logs" --out "$OUT" > "$logs/report.log" 2>&1 || status=1
tar -czf "$OUT/logs.tar.gz" -C "$logs" .
cat "$OUT/report.md" 2>/dev/null || cat "$logs/report.log"
exit $status
