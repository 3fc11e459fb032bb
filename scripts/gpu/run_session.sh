#!/usr/bin/env bash
# One device session's GPU work in three calls, each inside the device tool's 10-minute limit and
# its 8 returned files: every script writes to a scratch folder and each part comes back as one
# tarball beside a summary. Stage first on the build machine: scripts/gpu/stage_all.sh BUILD.
#
#   scripts/gpu/run_session.sh results   # one H200: the GPU test suites (backend ops, attention,
#                                        # model, engine, probes), `difftx study` on the GPU specs
#                                        # and the eval suite, side by side (correctness and
#                                        # results only: nothing here is timed against anything)
#   scripts/gpu/run_session.sh timing    # one H200, nothing else running: difftx bench (125M,
#                                        # then the paper's 1.4B shape)
#   scripts/gpu/run_session.sh engine    # two H200s: the engine tests, then difftx bench of the
#                                        # 1.4B shape (baseline, HF generate) on GPU 0; the 125M
#                                        # bench, decode step times of GEMV / launch variants
#                                        # (profile_decode.sh), then the batch-1 kernel traces
#                                        # (trace_decode.sh) on GPU 1; the long fuzz runs (if
#                                        # staged) on the CPU cores meanwhile
#   scripts/gpu/run_session.sh profile   # one H200: the engine tests, decode step times and the
#                                        # per-kernel table (profile_decode.sh)
#   scripts/gpu/run_session.sh attention # one H200: the engine tests, the paged attention's
#                                        # decode step times (125M, 1.4B), a batch / context
#                                        # sweep, both variants at batch 4
#   scripts/gpu/run_session.sh tune      # two H200s: the engine tests, then decode step times of
#                                        # GEMV variants on GPU 0; kernel traces of the decode
#                                        # step (trace_decode.sh) on GPU 1
#   scripts/gpu/run_session.sh dist      # two H200s: bench/dist/run_dist_gpu.sh, then the
#                                        # serving benchmark on one GPU (and, if staged, the
#                                        # long fuzz runs on spare CPU cores meanwhile)
# Environment: SPECS (study specs, default: the four GPU specs), STUDY_TIMEOUT (default 420),
# EVAL_STEPS (default 100), DIST_STEPS (default 30), SESSION_LIMIT (seconds before what still
# runs is stopped and packed, default 500).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
part=${1:?usage: $0 results|timing|profile|attention|tune|engine|dist}
out=${OUT:-$root/gpu-out}
scratch=/tmp/difftx-session
mkdir -p "$out" "$scratch"
[[ -d .carry/gpu || -f .carry/engine.tar.gz ]] || bash scripts/gpu/stage_all.sh --unpack > /dev/null || exit 1
export OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
t0=$SECONDS

# job NAME CMD...: runs CMD in the background, in its own process group, with
# OUT=$scratch/NAME and its log in $scratch/NAME.log.
pids=()
names=()
job() {
  local name=$1
  shift
  mkdir -p "$scratch/$name"
  OUT=$scratch/$name setsid bash -c '"$@" > "$0.log" 2>&1; echo "exit $?" >> "$0.log"' \
    "$scratch/$name" "$@" &
  pids+=($!)
  names+=("$name")
}
# finish: waits for the jobs until SESSION_LIMIT seconds (default 500) from the start, then
# sends SIGTERM to what still runs (a study then writes its partial results) and, 20 s later,
# SIGKILL; so the packing below always happens inside the device call.
finish() {
  local limit=${SESSION_LIMIT:-500} p running
  while ((SECONDS - t0 < limit)); do
    running=0
    for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && running=1; done
    ((running)) || break
    sleep 2
  done
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2> /dev/null && echo "stopped job group $p at the limit"; done
  for _ in $(seq 10); do
    running=0
    for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && running=1; done
    ((running)) || break
    sleep 2
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2> /dev/null; done
  pids=()
}
# unpack_engine: the engine stage alone (run_engine_suite.sh --stage), if only its archive came.
unpack_engine() {
  if [[ ! -d .carry/engine && -f .carry/engine.tar.gz ]]; then
    mkdir -p .carry/engine && tar -C .carry/engine -xzf .carry/engine.tar.gz
  fi
}
# pack NAME...: each job's folder and log into $out/NAME.tgz; the log's tail into the summary.
pack() {
  for name in "$@"; do
    echo "======== $name ($(tail -n 1 "$scratch/$name.log"))" >> "$out/summary.txt"
    tail -n 60 "$scratch/$name.log" >> "$out/summary.txt"
    tar -C "$scratch" -czf "$out/$name.tgz" "$name" "$name.log" 2> /dev/null
  done
}

case $part in
  results)
    job suite bash scripts/gpu/run_gpu_suite.sh tests
    job engine-tests bash scripts/gpu/run_engine_suite.sh tests
    for spec in ${SPECS:-mqar-hard brown-lm needle-mix outliers-quant}; do
      job "study-$spec" env STUDY_TIMEOUT="${STUDY_TIMEOUT:-420}" STUDY_WORK="/tmp/study-$spec" \
        bash scripts/gpu/run_studies.sh "$spec"
    done
    job eval env STEPS="${EVAL_STEPS:-100}" CPU=1 bash scripts/gpu/run_eval_suite.sh all
    finish
    pack "${names[@]}"
    ;;
  timing)
    job engine-bench125 env DIFFTX_SUITE_BUDGET=270 bash scripts/gpu/run_engine_suite.sh bench125
    finish
    job engine-bench1b env DIFFTX_SUITE_BUDGET=240 bash scripts/gpu/run_engine_suite.sh bench1b
    finish
    pack engine-bench125 engine-bench1b
    ;;
  profile)
    # One H200: the engine tests, then where a decode step's time goes (step times with and
    # without graphs / PDL, Nsight Compute's per-kernel table of the 125M V1 and 1.4B steps).
    unpack_engine
    job profile bash -c 'bash scripts/gpu/run_engine_suite.sh tests;
      CONFIGS="configs/gpt-125m-diff-v1.json" bash scripts/gpu/profile_decode.sh times;
      CONFIGS="configs/gpt-125m-softmax.json configs/gpt-125m-diff-v2.json" VARIANTS=graphs \
        bash scripts/gpu/profile_decode.sh times;
      CONFIGS=bench/engine/diff-1.4b.json VARIANTS=graphs BASELINE=1 TIMES_TIMEOUT=200 \
        bash scripts/gpu/profile_decode.sh times;
      NCU_TIMEOUT=200 NCU_GEN=3 NCU_CONFIGS="configs/gpt-125m-diff-v1.json bench/engine/diff-1.4b.json" \
        bash scripts/gpu/profile_decode.sh kernels'
    finish
    pack "${names[@]}"
    ;;
  engine)
    # the engine stage alone (run_engine_suite.sh --stage) or the whole archive
    unpack_engine
    if [[ ! -d .carry/fuzz && -f .carry/fuzz.tar.xz ]]; then tar -C .carry -xJf .carry/fuzz.tar.xz; fi
    if [[ -d .carry/fuzz ]]; then
      # processes per harness from their single-core rates: each reaches 10M executions in ~8 min
      job fuzz env FUZZ_PROCS="${FUZZ_PROCS:-run_config=6 model_config=3 safetensors_header=3 shard_header=1 tokenizer_model=2 hf_config=5 hf_index=4 train_state=4 http_request=3}" \
        bash scripts/gpu/run_fuzz_long.sh .carry/fuzz "${FUZZ_RUNS:-10000000}" "${FUZZ_SECONDS:-460}"
    fi
    # GPU 0: the tests, then the 1.4B benchmark (~4 min); GPU 1: the 125M benchmark, then the
    # step times without look-ahead, graphs or PDL.
    job gpu0 env CUDA_VISIBLE_DEVICES=0 DIFFTX_SUITE_BUDGET=470 bash -c \
      'bash scripts/gpu/run_engine_suite.sh tests; bash scripts/gpu/run_engine_suite.sh bench1b'
    job gpu1 env CUDA_VISIBLE_DEVICES=1 DIFFTX_SUITE_BUDGET=300 bash -c 'bash scripts/gpu/run_engine_suite.sh bench125;
      CONFIGS="configs/gpt-125m-diff-v1.json" VARIANTS="no-lookahead no-graphs no-pdl" \
        bash scripts/gpu/profile_decode.sh times;
      BATCHES=1 bash scripts/gpu/trace_decode.sh'
    finish
    pack "${names[@]}"
    ;;
  attention)
    # One H200: the paged attention's variants (DIFFTX_PAGED_LOADS) in the decode step, in order
    # of need (what the limit cuts is the last): the engine tests (the launcher's choice and
    # each variant forced, against the CPU oracle; racecheck), 125M and 1.4B step times with the
    # baseline, the launcher's choice over batch 1-128 and contexts 512 and 4K (125M), then both
    # variants forced at batch 4 (where the choice switches).
    unpack_engine
    job attention bash -c 'bash scripts/gpu/run_engine_suite.sh tests;
      CONFIGS=configs/gpt-125m-diff-v1.json VARIANTS=graphs BASELINE=1 BATCHES=1,4,8 \
        bash scripts/gpu/profile_decode.sh times;
      CONFIGS=bench/engine/diff-1.4b.json VARIANTS=graphs BASELINE=1 BATCHES=1 \
        TIMES_TIMEOUT=150 bash scripts/gpu/profile_decode.sh times;
      mkdir -p "$OUT/sweep"; CONFIGS=configs/gpt-125m-diff-v1.json VARIANTS=graphs \
        BATCHES=1,4,8,32,128 CONTEXTS=512,4096 OUT="$OUT/sweep" bash scripts/gpu/profile_decode.sh times;
      mkdir -p "$OUT/b4"; CONFIGS=configs/gpt-125m-diff-v1.json VARIANTS="staged registers" \
        BATCHES=4 CONTEXTS=512,4096 OUT="$OUT/b4" bash scripts/gpu/profile_decode.sh times'
    finish
    pack "${names[@]}"
    ;;
  tune)
    unpack_engine
    job gpu0 env CUDA_VISIBLE_DEVICES=0 bash -c 'bash scripts/gpu/run_engine_suite.sh tests;
      CONFIGS="configs/gpt-125m-diff-v1.json bench/engine/diff-1.4b.json" \
        VARIANTS="${TUNE_VARIANTS:-graphs no-preload bps1 bps4}" TIMES_TIMEOUT=90 \
        bash scripts/gpu/profile_decode.sh times'
    job gpu1 env CUDA_VISIBLE_DEVICES=1 bash -c 'bash scripts/gpu/trace_decode.sh;
      CONFIGS=bench/engine/diff-1.4b.json BATCHES=1 TAG=-no-preload TRACE_ENV=DIFFTX_GEMV_PRELOAD=0 \
        bash scripts/gpu/trace_decode.sh'
    finish
    pack "${names[@]}"
    ;;
  dist)
    # The libFuzzer harnesses (if staged in .carry/fuzz) run beside it on spare cores, niced.
    if [[ -d .carry/fuzz ]]; then
      job fuzz nice -n 19 bash scripts/gpu/run_fuzz_long.sh .carry/fuzz "${FUZZ_RUNS:-10000000}"
    fi
    job dist bash bench/dist/run_dist_gpu.sh "${DIST_STEPS:-30}"
    wait "${pids[-1]}"
    job serve-bench bash bench/serve/run_gpu_serve_bench.sh --steps 20 --concurrency 1,16,64,256
    finish
    pack "${names[@]}"
    ;;
  *)
    echo "run_session: unknown part '$part' (results, timing, profile, attention, tune, engine or dist)" >&2
    exit 2
    ;;
esac
echo "run_session $part: $((SECONDS - t0)) s" | tee -a "$out/summary.txt"
cat "$out/summary.txt"
