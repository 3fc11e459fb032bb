// `difftx export hf`: writes a Hugging Face model folder from a difftx checkpoint.
#include "difftx/hf/hf_export.h"

#include <optional>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/safetensors.h"
#include "difftx/hf/hf_config.h"
#include "difftx/hf/hf_convert.h"
#include "difftx/hf/hf_tokenizer.h"
#include "difftx/model/checkpoint.h"

namespace difftx::hf {
namespace fs = std::filesystem;

namespace {

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec);
}

void write_json(const fs::path& path, const nlohmann::json& j, HfExportResult& result) {
  write_file_atomic(path, j.dump(2) + "\n");
  result.files.push_back(path.string());
}

}  // namespace

HfExportResult export_hf(const fs::path& checkpoint, const fs::path& out,
                         const HfExportOptions& options) {
  if (same_folder(checkpoint, out)) {
    fail(
        "--out '{}' is the checkpoint folder itself: the export would overwrite its config.json; "
        "choose another folder",
        out.string());
  }
  const ModelCheckpoint ck = load_model_checkpoint(checkpoint);
  const ModelConfig& c = ck.config;
  HfExportResult result;
  result.model_type = hf_model_type(c);  // refuses DIFF V2
  DIFFTX_CHECK(options.dtype == DType::f32 || options.dtype == DType::bf16,
               "Hugging Face export stores f32 or bf16 weights, not {}", dtype_name(options.dtype));

  // Everything that can fail is computed before the first file is written.
  std::optional<HfTokenizerFiles> tok;
  if (!ck.tokenizer.empty()) {
    tok = hf_tokenizer_files(ck.tokenizer, c.max_seq_len);
    if (tok->vocab_size > c.vocab_size) {
      fail("{}: the tokenizer has {} pieces but the model's vocab_size is {}",
           ck.tokenizer.string(), tok->vocab_size, c.vocab_size);
    }
  }
  NamedTensors tensors = to_hf_tensors(c, ck.params);
  for (auto& [name, t] : tensors) {
    result.parameters += t.numel();
    if (options.dtype != DType::f32) t = t.to_dtype(options.dtype);
  }
  result.head_gain_folded = c.attention == AttentionKind::diff_v1 && c.head_norm_gain;

  ensure_writable_directory(out);
  for (const char* stale :
       {"model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"}) {
    std::error_code ec;
    if (fs::exists(out / stale, ec)) {
      fail(
          "'{}' already holds {}, which transformers could load instead of the new "
          "model.safetensors: remove it or choose another --out",
          out.string(), stale);
    }
  }
  write_json(out / "config.json", hf_config_json(c, options.dtype), result);
  write_json(out / "generation_config.json", hf_generation_config_json(), result);
  if (tok) {
    write_file_atomic(out / "tokenizer.model", read_file_bytes(ck.tokenizer));
    result.files.push_back((out / "tokenizer.model").string());
    write_json(out / "tokenizer.json", tok->tokenizer, result);
    write_json(out / "tokenizer_config.json", tok->tokenizer_config, result);
    write_json(out / "special_tokens_map.json", tok->special_tokens_map, result);
    result.tokenizer = true;
  }
  // Weights last: a folder with model.safetensors is complete.
  save_safetensors(out / "model.safetensors", tensors,
                   {{"format", "pt"}, {"difftx_rope_style", rope_style_name(c.rope_style)}});
  result.files.push_back((out / "model.safetensors").string());
  return result;
}

}  // namespace difftx::hf
