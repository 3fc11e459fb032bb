#!/usr/bin/env bash
# Nsight Compute profile of the fused attention kernels on the GPU machine: warp-state (stall
# reason) statistics, scheduler and throughput sections for one launch of each DIFF V1 kernel
# (forward and backward, d = 64 and 128, seq 4K), from the carried bench_attention
# (.carry/attn, see run_attention_bench.sh). Clocks are left alone (--clock-control none).
#   usage: bench/cuda/profile_attention.sh [seq]        logs: $OUT/ncu_<fwd|bwd>_<d>.txt
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/attention}
mkdir -p "$OUT"
seq=${1:-4096}
export LD_LIBRARY_PATH="$PWD/.carry/attn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for d in 128 64; do
  for kind in fwd bwd; do
    timeout 240 ncu --clock-control none --kernel-name regex:"attention_${kind}_sm90" \
      --launch-skip 1 --launch-count 1 \
      --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
      --section LaunchStats --section SourceCounters --section MemoryWorkloadAnalysis \
      .carry/attn/bench_attention --seq "$seq" --d "$d" --diff-only --reps 1 > "$OUT/ncu_${kind}_$d.txt" 2>&1
    echo "== $kind d=$d (exit $?)"
    grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Issued Warp|No Eligible|Active Warps Per Scheduler|Eligible Warps|Stall|stall|cycles being stalled|Warp Cycles Per Issued|L2 Hit|Mem Busy|Max Bandwidth" "$OUT/ncu_${kind}_$d.txt" | cut -c1-240 | head -40
  done
done
