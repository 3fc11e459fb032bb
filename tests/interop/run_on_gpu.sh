#!/usr/bin/env bash
# The transformers interoperability check, in two halves:
#   tests/interop/run_on_gpu.sh prepare [BUILD_DIR] [OUT_DIR]
#       here (difftx's machine): builds difftx and difftx_hf_fixture, trains a small tokenizer,
#       writes three random-init checkpoints (DIFF V1 MHA, DIFF V1 GQA, softmax GQA; configs in
#       tests/interop/*.json), exports each with `difftx export hf` and dumps difftx's logits,
#       greedy generation and paragraph token ids. OUT_DIR defaults to .carry/hf/interop
#       (git-ignored), small enough to carry to the other machine.
#   tests/interop/run_on_gpu.sh check [OUT_DIR] [SAVE_DIR]
#       on the machine with transformers (the GPU machine's python3: torch, transformers,
#       tokenizers, safetensors): runs check_hf.py on OUT_DIR. Only Python runs there. With
#       SAVE_DIR, transformers also re-saves each model (bf16 sharded, fp16) into SAVE_DIR/<name>.tar.
#   tests/interop/run_on_gpu.sh verify-import SAVE_DIR [BUILD_DIR]
#       here again: `difftx import hf` on each folder transformers saved, then compares the
#       imported checkpoint's logits with transformers' (difftx_hf_fixture compare).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mode="${1:-}"

case "$mode" in
  prepare)
    build="${2:-$root/build/hf}"
    out="${3:-$root/.carry/hf/interop}"
    if [ ! -f "$build/build.ninja" ]; then
      cmake --preset cpu -B "$build" -DDIFFTX_BENCH=OFF -DDIFFTX_WERROR=OFF
    fi
    cmake --build "$build" -j2 --target difftx_cli difftx_hf_fixture
    fixture="$build/tests/hf/difftx_hf_fixture"
    rm -rf "$out"
    mkdir -p "$out"
    cp "$here/paragraph.txt" "$out/paragraph.txt"
    # Tokenizer corpus: the licence texts Debian ships plus the project's Markdown files.
    corpus=()
    for f in /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 \
             /usr/share/common-licenses/LGPL-2.1 /usr/share/common-licenses/MPL-2.0; do
      [ -f "$f" ] && corpus+=("$f")
    done
    while IFS= read -r f; do corpus+=("$f"); done < <(cd "$root" && find docs tests -name '*.md' -printf "$root/%p\n" | sort)
    "$fixture" tokenizer --corpus "${corpus[@]}" --vocab 1000 --out "$out/tokenizer.model"
    seed=1
    for name in diff_mha diff_gqa softmax; do
      "$fixture" init --config "$here/$name.json" --seed "$seed" --tokenizer "$out/tokenizer.model" \
        --out "$out/$name/checkpoint"
      "$build/difftx" export hf --checkpoint "$out/$name/checkpoint" --out "$out/$name/hf"
      "$fixture" dump --checkpoint "$out/$name/checkpoint" --text "$out/paragraph.txt" \
        --out "$out/$name/dump.safetensors"
      rm -rf "$out/$name/checkpoint"
      seed=$((seed + 1))
    done
    rm -f "$out/tokenizer.model"
    du -sh "$out"
    ;;
  check)
    out="${2:-$root/.carry/hf/interop}"
    if [ -n "${3:-}" ]; then
      mkdir -p "$3"
      python3 "$here/check_hf.py" --dir "$out" --save-dir "$3"
    else
      python3 "$here/check_hf.py" --dir "$out"
    fi
    ;;
  verify-import)
    saved="${2:?usage: $0 verify-import SAVE_DIR [BUILD_DIR]}"
    build="${3:-$root/build/hf}"
    cmake --build "$build" -j2 --target difftx_cli difftx_hf_fixture > /dev/null
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    failed=0
    passed=0
    for tarball in "$saved"/*.tar; do
      tar -xf "$tarball" -C "$work"
    done
    for variant in "$work"/*/*/; do
      variant="${variant%/}"
      name="$(basename "$(dirname "$variant")")/$(basename "$variant")"
      echo "$name: $(cd "$variant" && ls | tr '\n' ' ')"
      if "$build/difftx" import hf --in "$variant" --out "$work/ck/${name//\//_}" | sed 's/^/  /' &&
         "$build/tests/hf/difftx_hf_fixture" compare --checkpoint "$work/ck/${name//\//_}" \
           --reference "$variant.logits.safetensors" | sed 's/^/  /'; then
        passed=$((passed + 1))
      else
        failed=$((failed + 1))
      fi
    done
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
  *)
    echo "usage: $0 prepare [BUILD_DIR] [OUT_DIR] | check [OUT_DIR] [SAVE_DIR] | verify-import SAVE_DIR [BUILD_DIR]" >&2
    exit 2
    ;;
esac
