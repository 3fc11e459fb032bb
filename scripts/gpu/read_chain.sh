#!/usr/bin/env bash
# The floor of a batch-1 decode step's weight reads by kernel structure (bench_read_chain: one
# kernel, a chain of kernels with and without PDL, one persistent kernel) for the 125M DIFF V1
# preset and the 1.4B shape, in the variants that bear on the engine's GEMVs (loads a batch ahead,
# one or two blocks per multiprocessor, an attention stand-in per layer), then the engine's own
# batch-1 step (`difftx bench`, context 512) in the same call. Logs and JSON go to $OUT.
#
# On the device machine, after unpacking the staged binaries (scripts/gpu/run_engine_suite.sh
# --stage) into .carry/engine:
#   scripts/gpu/read_chain.sh [--no-engine]
# smem72 / smem100: 72 / 100 KB of (unused) shared memory per block, so that beside a kernel's two
# blocks per multiprocessor one block of the next kernel fits, or none (the decode GEMVs' registers
# leave room for one block of most next kernels).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/.carry/engine/bin
out=${OUT:-$root/gpu-out}
mkdir -p "$out/read-chain"
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv > "$out/read-chain/gpu.txt" 2>&1

declare -A configs=([125m]=$root/configs/gpt-125m-diff-v1.json [1.4b]=$root/bench/engine/diff-1.4b.json)
variants=("default:" "ahead:--ahead" "stand-in:--stand-in" "stand-in-ahead:--stand-in --ahead"
          "one-block:--blocks-per-sm 1" "empty:--empty" "empty-stand-in:--empty --stand-in"
          "smem72:--smem-kb 72" "smem100:--smem-kb 100" "smem72-stand-in:--smem-kb 72 --stand-in")
# READ_CHAIN_VARIANTS: "label:flags;label:flags;..." instead of the list above
[[ -n ${READ_CHAIN_VARIANTS:-} ]] && IFS=';' read -ra variants <<< "$READ_CHAIN_VARIANTS"
for name in 125m 1.4b; do
  for v in "${variants[@]}"; do
    label=${v%%:*}
    args=${v#*:}
    log=$out/read-chain/$name-$label.md
    # shellcheck disable=SC2086
    timeout 120 "$bin/bench_read_chain" --config "${configs[$name]}" $args \
      --json "$out/read-chain/$name-$label.json" > "$log" 2>&1
    echo "== $name $label (exit $?)"
    cat "$log"
  done
done

if [[ ${1:-} != --no-engine ]]; then
  for name in 125m 1.4b; do
    timeout 180 "$bin/difftx" bench --config "${configs[$name]}" --device cuda --batch 1 \
      --context 512 --gen 64 --baseline --json "$out/read-chain/engine-$name.json" \
      > "$out/read-chain/engine-$name.md" 2>&1
    echo "== engine $name (exit $?)"
    cat "$out/read-chain/engine-$name.md"
  done
fi
tar -C "$out" -czf "$out/read-chain.tar.gz" read-chain && rm -rf "$out/read-chain"
