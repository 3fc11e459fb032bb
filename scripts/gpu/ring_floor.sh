#!/usr/bin/env bash
# The ring mode of bench_read_chain (a persistent kernel streaming the weights ahead of the step's
# dependencies through shared memory) beside the other structures, for the 125M preset and the
# 1.4B shape: reads with and without an attention stand-in per layer, the structure alone
# (--empty), and the ring's size and piece size; then the engine's batch-1 step (read_chain.sh).
# On the device machine, carrying .carry/r.tar.xz (bin/bench_read_chain, bin/difftx and lib/ of
# the staged engine, scripts/gpu/run_engine_suite.sh --stage):
#   scripts/gpu/ring_floor.sh            # logs and JSON -> $OUT/read-chain.tar.gz
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
mkdir -p .carry/engine
[[ -f .carry/r.tar.xz ]] && tar -C .carry/engine -xJf .carry/r.tar.xz
export READ_CHAIN_VARIANTS=${READ_CHAIN_VARIANTS:-"default:;stand-in:--stand-in;empty:--empty;empty-stand-in:--empty --stand-in;ring96:--ring-kb 96 --stand-in;piece8:--piece-kb 8 --stand-in;piece32:--piece-kb 32 --stand-in"}
exec scripts/gpu/read_chain.sh "$@"
