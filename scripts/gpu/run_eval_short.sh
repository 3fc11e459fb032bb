#!/usr/bin/env bash
# The eval tasks that the shared "results" call left unrun (needle, icl, attention-map, and
# quant-logits with needle retrieval), alone on one GPU at small budgets: two 60-step training
# runs of the ~125M DIFF V1 preset and its matched baseline, then each task with its wall time.
# Needs the staged archive (scripts/gpu/stage_all.sh) and data/brown-50k. Writes $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
[[ -d .carry/eval ]] || bash scripts/gpu/stage_all.sh --unpack > /dev/null || exit 1
export LD_LIBRARY_PATH=$PWD/.carry/eval/lib:/usr/local/cuda/lib64 OMP_WAIT_POLICY=passive
d=.carry/eval/bin/difftx
w=/tmp/difftx-eval-short
out=${OUT:-gpu-out}
mkdir -p "$out" "$w"
for a in diff-v1:diff softmax:base; do
  timeout 90 "$d" train --config "configs/gpt-125m-${a%%:*}.json" --device cuda --steps 60 \
    --out "$w/${a##*:}" --quiet > "$out/train-${a##*:}.log" 2>&1
  echo "train ${a##*:}: rc $?; $(grep -o 'validation loss [0-9.]*' "$out/train-${a##*:}.log" | tail -n 1)"
done
task() {
  local name=$1 t0=$SECONDS
  shift
  timeout 75 "$d" eval "$@" --checkpoint "$w/diff" --checkpoint "$w/base" --device cuda \
    --out "$w/eval/$name" --progress none > "$out/$name.log" 2>&1
  echo "cuda $name: rc $?, $((SECONDS - t0)) s"
}
task needle needle --data data/brown-50k --needles 1:1,4:2 --depths 0,50,100 --lengths 500,1000 \
  --samples 4 --digits 7
task icl icl --data data/brown-50k --shots 0,1,4,16 --permutations 2 --icl-test 30 --icl-classes 4
task attention-map attention-map --layer 5 --head 0 --prompt "The jury said it did find that many of \
Georgia's registration and election laws are outmoded or inadequate and often ambiguous."
task quant-needle quant-logits --data data/brown-50k --tokens 8192 --context 1024 --batch 4 --bits 16,8,4 --task needle \
  --needles 1:1 --depths 0,100 --lengths 1000 --samples 4 --digits 7
"$d" eval report "$w/eval" --out "$w/eval/report.html" > /dev/null 2>&1
tar -czf "$out/eval-short.tgz" -C "$w" eval
