#!/usr/bin/env bash
# Whether the paged attention should let the next kernel launch before it waits on the QKV kernel
# (DIFFTX_ATTN_EARLY_TRIGGER=1), on the device machine in one call: the attention and engine tests
# with it on, bench_read_chain's attention stand-ins with and without the same early trigger, then
# batch-1 decode steps (context 512) of the 125M preset and the 1.4B shape with it off and on,
# twice. Needs the staged engine binaries (scripts/gpu/run_engine_suite.sh --stage, repacked as
# .carry/c.tar.xz); everything comes back as $OUT/call7.tar.gz.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p .carry/engine
[[ -f .carry/c.tar.xz ]] && tar -C .carry/engine -xJf .carry/c.tar.xz
export LD_LIBRARY_PATH=$root/.carry/engine/lib:${LD_LIBRARY_PATH:-}
B=.carry/engine/bin
o=/tmp/o
out=${OUT:-$root/gpu-out}
mkdir -p "$o/rc" "$out"
DIFFTX_ATTN_EARLY_TRIGGER=1 timeout 100 $B/test_engine_ops_cuda --gtest_filter='*Paged*:*CapturedGraph*' > $o/t-ops-early.log 2>&1
echo "ops early exit $?"; tail -1 $o/t-ops-early.log
DIFFTX_ATTN_EARLY_TRIGGER=1 timeout 60 $B/test_engine_cuda > $o/t-eng-early.log 2>&1
echo "engine early exit $?"; tail -1 $o/t-eng-early.log
for n in 125m 1.4b; do
  c=configs/gpt-125m-diff-v1.json
  [[ $n == 1.4b ]] && c=bench/engine/diff-1.4b.json
  for v in "stand-in:--stand-in" "early-stand-in:--stand-in --early-stand-in"; do
    l=${v%%:*}
    # shellcheck disable=SC2086
    timeout 60 $B/bench_read_chain --config $c ${v#*:} --json $o/rc/$n-$l.json > $o/rc/$n-$l.md 2>&1
    echo "== $n $l"
    grep -E "chain-pdl" $o/rc/$n-$l.md
  done
  for r in 1 2; do
    for e in 0 1; do
      DIFFTX_ATTN_EARLY_TRIGGER=$e timeout 100 $B/difftx bench --config $c --device cuda --batch 1 \
        --context 512 --gen 64 --json $o/engine-$n-early$e-r$r.json 2> $o/engine-$n-early$e-r$r.log |
        grep tg64 | sed "s/^/early=$e r$r /"
    done
  done
done
tar -C /tmp -czf "$out/call7.tar.gz" o
