#!/usr/bin/env bash
# Where a decode step's time goes, on the GPU machine: `difftx bench` step times with and without
# CUDA graphs and programmatic dependent launch (PDL), then Nsight Compute's duration of every
# kernel of a short batch-1 run, summed per kernel (scripts/gpu/kernel_table.py). Needs the staged
# engine binaries (scripts/gpu/stage_all.sh; unpacked here if only the archive came).
#   scripts/gpu/profile_decode.sh [times|kernels|attention|gemv|all]   (default all; logs in $OUT)
# gemv: Nsight Compute's duration and DRAM bytes of NCU_COUNT GEMV calls of a batch-1 run, each
# kernel alone (GEMV_VARIANTS: "default" and / or env:VAR=VALUE+..., default "default"); not part
# of `all`.
# attention: Nsight Compute's launch, occupancy, warp-state, scheduler and memory sections of a
# few batch-1 paged attention calls of each config (what bounds a kernel that reads a
# microsecond's worth of K/V and takes 9-15 us; NCU_SKIP calls skipped first, default 300: past
# the warm-up's batch-8 calls); not part of `all`.
# Environment: CONFIGS (default: the 125M DIFF V1, V2 and softmax configs and the 1.4B shape),
# NCU_CONFIGS (the configs profiled by ncu, default CONFIGS), NCU_TIMEOUT (seconds each, 120),
# NCU_GEN (decode steps under ncu, 8), TIMES_TIMEOUT (seconds per step-time run, 120),
# VARIANTS (of the step times: default "graphs no-lookahead no-graphs no-pdl"; no-lookahead: each
# step waited for before the next is queued; no-preload: the GEMV
# does not load its first weights before waiting on the previous kernel; cols1 / cols2 / cols4:
# the GEMV takes 1 / 2 / 4 output columns per warp whatever the width; bps1 .. bps8: its grid is
# capped at that many blocks per multiprocessor instead of 2; registers / staged: the paged
# attention's register / staged variant at every batch size instead of the launcher's choice;
# gemvrows1 .. gemvrows8: steps of more rows than that run their projections through cuBLASLt
# and the unfused ops instead of the GEMV), BASELINE=1 (the step times of the matched softmax
# baseline too), BATCHES and CONTEXTS (of the step times, default 1,8 and 512); more variants:
# pdloff-OP (OP's kernels launched without PDL, DIFFTX_PDL_OFF: gemv, attention, sample, rope,
# kv_write), no-ahead / ahead-all (the one-row GEMV never loads the next batch of weights before
# it uses the current one / does so whatever the row length: DIFFTX_GEMV_AHEAD=0 / 2),
# depth1 / depth2 / depth4 (the one-row GEMV without look-ahead keeps 1, 2 or 4 times its loads
# in flight per lane, at most 16: DIFFTX_GEMV_DEPTH), smemN (each GEMV block reserves N KB of
# shared memory it does not use, which limits the blocks of other kernels beside it, instead of
# the launcher's rule; smem0: never: DIFFTX_GEMV_SMEM_KB),
# env:VAR=VALUE+VAR=VALUE (any settings).
# BIN: the difftx binary to time (default the staged one), TAG: a suffix of the output files.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
what=${1:-all}
out=${OUT:-$root/profile-out}
mkdir -p "$out"
[[ -d .carry/engine ]] || bash scripts/gpu/stage_all.sh --unpack > /dev/null || exit 1
bin=.carry/engine/bin
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
configs=${CONFIGS:-"configs/gpt-125m-diff-v1.json configs/gpt-125m-diff-v2.json configs/gpt-125m-softmax.json bench/engine/diff-1.4b.json"}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader

if [[ $what == kernels || $what == all ]]; then
  command -v ncu > /dev/null || { echo "no ncu on this machine"; exit 1; }
  for c in ${NCU_CONFIGS:-$configs}; do
    name=$(basename "$c" .json)
    echo "==== ncu: $name, batch 1, context 512, 8 decode steps"
    timeout "${NCU_TIMEOUT:-120}" ncu --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
      --print-units base "$bin/difftx" bench --config "$c" --device cuda --batch 1 --context 512 \
      --gen "${NCU_GEN:-8}" > "$out/ncu-$name.csv" 2> "$out/ncu-$name.log"
    echo "ncu exit $?"
    python3 scripts/gpu/kernel_table.py "$out/ncu-$name.csv" | tee "$out/kernels-$name.txt"
  done
fi

if [[ $what == gemv ]]; then
  command -v ncu > /dev/null || { echo "no ncu on this machine"; exit 1; }
  for c in ${NCU_CONFIGS:-$configs}; do
    name=$(basename "$c" .json)
    for variant in ${GEMV_VARIANTS:-default}; do
      envs=()
      [[ $variant == env:* ]] && IFS=+ read -ra envs <<< "${variant#env:}"
      echo "==== ncu: GEMV kernels alone, $name, $variant, batch 1, context 512"
      env "${envs[@]}" timeout "${NCU_TIMEOUT:-200}" ncu --clock-control none -k regex:gemv \
        --launch-skip "${NCU_SKIP:-150}" --launch-count "${NCU_COUNT:-100}" \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv --print-units base \
        "$bin/difftx" bench --config "$c" --device cuda --batch 1 --context 512 --gen 8 \
        > "$out/ncu-gemv-$name-$variant.csv" 2> "$out/ncu-gemv-$name-$variant.log"
      echo "ncu exit $?"
      python3 scripts/gpu/kernel_table.py "$out/ncu-gemv-$name-$variant.csv" | tee "$out/gemv-$name-$variant.txt"
    done
  done
fi

if [[ $what == attention ]]; then
  command -v ncu > /dev/null || { echo "no ncu on this machine"; exit 1; }
  for c in ${NCU_CONFIGS:-$configs}; do
    name=$(basename "$c" .json)
    echo "==== ncu sections: paged attention, $name, batch 1, context 512"
    timeout "${NCU_TIMEOUT:-120}" ncu --clock-control none -k regex:paged_decode --launch-skip "${NCU_SKIP:-300}" \
      --launch-count 4 --section LaunchStats --section Occupancy --section WarpStateStats \
      --section SchedulerStats --section MemoryWorkloadAnalysis --section SpeedOfLight \
      "$bin/difftx" bench --config "$c" --device cuda --batch 1 --context 512 --gen 32 \
      > "$out/ncu-attention-$name.txt" 2> "$out/ncu-attention-$name.log"
    echo "ncu exit $?"
    grep -E "Duration|Registers Per|Achieved Occupancy|Stall|Warp Cycles Per Issued|Issued Warp|Memory Throughput" \
      "$out/ncu-attention-$name.txt" | head -n 40
  done
fi

if [[ $what == times || $what == all ]]; then
  for c in $configs; do
    name=$(basename "$c" .json)
    for variant in ${VARIANTS:-graphs no-lookahead no-graphs no-pdl}; do
      flags=()
      envs=()
      case $variant in
        no-graphs) flags=(--no-graphs) ;;
        no-lookahead) flags=(--no-lookahead) ;;
        no-pdl) envs=(DIFFTX_PDL=0) ;;
        no-preload) envs=(DIFFTX_GEMV_PRELOAD=0) ;;
        cols[124]) envs=(DIFFTX_GEMV_COLS=${variant#cols}) ;;
        bps[1-8]) envs=(DIFFTX_GEMV_BLOCKS_PER_SM=${variant#bps}) ;;
        registers | staged) envs=(DIFFTX_PAGED_LOADS=$variant) ;;
        gemvrows[1-8]) envs=(DIFFTX_GEMV_MAX_ROWS=${variant#gemvrows}) ;;
        pdloff-*) envs=(DIFFTX_PDL_OFF=${variant#pdloff-}) ;;
        no-ahead) envs=(DIFFTX_GEMV_AHEAD=0) ;;
        ahead-all) envs=(DIFFTX_GEMV_AHEAD=2) ;;
        depth[124]) envs=(DIFFTX_GEMV_DEPTH=${variant#depth}) ;;
        smem[0-9]*) envs=(DIFFTX_GEMV_SMEM_KB=${variant#smem}) ;;
        env:*) IFS=+ read -ra envs <<< "${variant#env:}" ;;
      esac
      echo "==== $name, $variant${TAG:-}"
      [[ ${BASELINE:-0} == 1 ]] && flags+=(--baseline)
      env "${envs[@]}" timeout "${TIMES_TIMEOUT:-120}" "${BIN:-$bin/difftx}" bench --config "$c" --device cuda --batch "${BATCHES:-1,8}" \
        --context "${CONTEXTS:-512}" --gen 64 "${flags[@]}" --json "$out/times-$name-$variant${TAG:-}.json" \
        2> "$out/times-$name-$variant${TAG:-}.log" | grep -E '\| tg[0-9]+ \|'
    done
  done
fi
