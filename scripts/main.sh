#!/usr/bin/env bash
# The main job: set up, prepare the Brown corpus, train the default DIFF V1 model
# (configs/tiny.json) on the CPU, then generate a sample from it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
DIFFTX_CPU_TARGETS=difftx_cli bash scripts/setup.sh
difftx=./build/cpu/difftx
$difftx model info --config configs/tiny.json
$difftx data prepare --out data/brown
$difftx train --config configs/tiny.json
$difftx generate --checkpoint runs/tiny --prompt "The jury said" --max-tokens 80 --temperature 0.8 --top-k 40 --seed 1
echo "main: done in $(( $(date +%s) - start )) s"
