#!/usr/bin/env bash
# The main job: set up, prepare the Brown corpus, train the default DIFF V1 model
# (configs/tiny.json) on the CPU, then generate a sample from it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
# OpenMP and OpenBLAS threads busy-wait between parallel regions by default; on a 2-core
# machine the two pools then steal each other's cores (bench/README.md: 4.2k -> 6.9k tok/s).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
DIFFTX_CPU_TARGETS=difftx_cli bash scripts/setup.sh
difftx=./build/cpu/difftx
$difftx model info --config configs/tiny.json
$difftx data prepare --out data/brown
# --overwrite: the main job starts runs/tiny again when it is rerun (a run folder holds one run).
$difftx train --config configs/tiny.json --overwrite
$difftx generate --checkpoint runs/tiny --prompt "The jury said" --max-tokens 80 --temperature 0.8 --top-k 40 --seed 1
echo "main: done in $(( $(date +%s) - start )) s"
