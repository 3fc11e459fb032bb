#!/usr/bin/env bash
# CPU training throughput, difftx vs PyTorch: runs bench_train_cpu and torch_train_cpu.py back to
# back with the same thread count on a run config (default configs/tiny.json) and on its matched
# softmax baseline (`difftx model match`, written to a temp dir), R rounds (each round runs all
# four), then prints one table: difftx tokens/s, PyTorch tokens/s and their ratio (medians over
# the rounds, with the min-max range of the ratio). Builds nothing.
#
#   bench/train/run_cpu_train_bench.sh [BUILD_DIR] [--config RUN.json] [--steps N] [--warmup W]
#                                      [--threads K] [--rounds R] [--out FILE] [--system-malloc]
#                                      [--default-spin]
#
# BUILD_DIR (default build/cpu) must hold `difftx` and bench/train/bench_train_cpu, e.g.
#   cmake --preset cpu -B build/bench-cpu -DDIFFTX_WERROR=OFF
#   cmake --build build/bench-cpu -j2 --target bench_train_cpu difftx_cli
# --rounds R (default 3): repetitions of the whole sequence, against other load on the machine.
# --out FILE keeps the JSON lines of every run (default: a temp file, removed at exit).
# --system-malloc: PyTorch with glibc's malloc defaults (see torch_train_cpu.py tune_malloc).
#
# Both sides get OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=4 unless already set: each
# process has two thread pools (libgomp's and the pthread OpenBLAS's) that otherwise busy-wait
# after every parallel region and GEMM and take the cores from each other (on 2 cores both sides
# ran slower with 2 threads than with 1). bench/README.md has the measurements. --default-spin
# leaves both variables as they are (unset: the libraries' busy-waiting defaults).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build="$root/build/cpu"
config="$root/configs/tiny.json"
steps=20
rounds=3
warmup=3
threads=$(nproc)
out=""
torch_flags=()
tune_spin=1

die() { echo "run_cpu_train_bench: error: $*" >&2; exit 1; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) need_value "$@"; config=$2; shift 2 ;;
    --steps) need_value "$@"; steps=$2; shift 2 ;;
    --warmup) need_value "$@"; warmup=$2; shift 2 ;;
    --threads) need_value "$@"; threads=$2; shift 2 ;;
    --rounds) need_value "$@"; rounds=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --system-malloc) torch_flags+=(--system-malloc); shift ;;
    --default-spin) tune_spin=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) build=$1; shift ;;
  esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$rounds'"
if ((tune_spin)); then
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
  export OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
fi

cli="$build/difftx"
bench="$build/bench/train/bench_train_cpu"
py=/usr/bin/python3
torch_script="$root/bench/train/torch_train_cpu.py"
[[ -x "$cli" ]] || die "$cli not found: build the difftx_cli target in $build first"
[[ -x "$bench" ]] || die "$bench not found: build the bench_train_cpu target in $build first"
[[ -x "$py" ]] || die "$py not found: the PyTorch side needs Debian's python3 with python3-torch"
[[ -f "$config" ]] || die "run config $config not found"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=${out:-$tmp/results.jsonl}
: > "$results"

# The matched softmax baseline: the same run config with the model from `difftx model match`.
"$cli" model match --config "$config" --out "$tmp/softmax-model.json"
baseline="$tmp/$(basename "${config%.json}")-softmax.json"
"$py" - "$config" "$tmp/softmax-model.json" "$baseline" <<'EOF'
import json, sys
run_path, model_path, out_path = sys.argv[1:4]
with open(run_path) as f:
    run = json.load(f)
with open(model_path) as f:
    run["model"] = json.load(f)
run["comment"] = f"matched softmax baseline of {run_path} (difftx model match), for the CPU benchmark"
with open(out_path, "w") as f:
    json.dump(run, f, indent=2)
EOF

read -r load_before _ < /proc/loadavg
echo "run_cpu_train_bench: $threads threads, $rounds rounds of $warmup warm-up + $steps timed steps;" \
  "load average $load_before;" \
  "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-<unset>} OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-<unset>}" \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}" >&2

declare -A params
for cfg in "$config" "$baseline"; do
  params[$cfg]=$("$cli" model info --config "$cfg" | awk '$1 == "total" { gsub(",", "", $3); print $3 }')
  [[ -n "${params[$cfg]}" ]] || die "difftx model info --config $cfg printed no total"
done
for ((round = 1; round <= rounds; round++)); do
  for cfg in "$config" "$baseline"; do
    echo "== round $round/$rounds: $(basename "$cfg"), ${params[$cfg]} parameters (difftx model info)" >&2
    "$bench" --config "$cfg" --steps "$steps" --warmup "$warmup" --threads "$threads" \
      --json "$results" | grep -v '^{' >&2
    "$py" "$torch_script" --config "$cfg" --steps "$steps" --warmup "$warmup" --threads "$threads" \
      --expect-params "${params[$cfg]}" --json "$results" "${torch_flags[@]}" | grep -v '^{' >&2
  done
done

read -r load_after _ < /proc/loadavg
"$py" - "$results" "$load_before" "$load_after" <<'EOF'
import json, os, statistics, sys
path, load_before, load_after = sys.argv[1:4]
rows = [json.loads(line) for line in open(path) if line.strip()]
by = {}
for r in rows:
    by.setdefault(r["config"], {}).setdefault(r["side"], []).append(r)
rounds = max(len(runs) for sides in by.values() for runs in sides.values())
print(f"\nCPU training throughput, fp32: tokens/s from the median step time, median of {rounds} "
      f"round(s); load average {load_before} before, {load_after} after")
head = (f"{'config':<20} {'attention':<9} {'params':>10} {'tok/step':>8} {'thr':>3} "
        f"{'difftx tok/s':>12} {'PyTorch tok/s':>13} {'ratio':>6} {'ratio range':>12}")
print(head)
print("-" * len(head))
for cfg, sides in by.items():
    d, t = sides.get("difftx", []), sides.get("pytorch", [])
    if not d or not t or len(d) != len(t):
        print(f"{os.path.basename(cfg):<20} incomplete: {[(k, len(v)) for k, v in sides.items()]}")
        continue
    if {r["params"] for r in d} != {r["params"] for r in t}:
        sys.exit(f"run_cpu_train_bench: error: parameter counts differ for {cfg}")
    dt = [r["tokens_per_s_median"] for r in d]
    tt = [r["tokens_per_s_median"] for r in t]
    ratios = [a / b for a, b in zip(dt, tt)]  # per round: the two sides ran back to back
    print(f"{os.path.basename(cfg):<20} {d[0]['attention']:<9} {d[0]['params']:>10} "
          f"{int(d[0]['tokens_per_step']):>8} {d[0]['threads']:>3} {statistics.median(dt):>12.0f} "
          f"{statistics.median(tt):>13.0f} {statistics.median(ratios):>6.2f} "
          f"{min(ratios):>5.2f}-{max(ratios):<5.2f}")
print("ratio = difftx / PyTorch tokens/s (> 1: difftx faster): median of the per-round ratios")
EOF
