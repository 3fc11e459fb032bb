// tokenizer.json / tokenizer_config.json / special_tokens_map.json from a difftx SentencePiece
// model.
#include "difftx/hf/hf_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <map>
#include <memory>
#include <tuple>

#include "difftx/core/error.h"
#include "difftx/data/tokenizer.h"

namespace difftx::hf {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSpaceMarker = "\xE2\x96\x81";  // U+2581

struct SpModel {
  data::Tokenizer tokenizer;  // validates difftx's reserved ids
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp;
};

SpModel load_sp(const fs::path& path) {
  SpModel m;
  m.tokenizer = data::Tokenizer::load(path);
  m.sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = m.sp->LoadFromSerializedProto(m.tokenizer.serialized());
  if (!status.ok()) fail("'{}' is not a SentencePiece model: {}", path.string(), status.ToString());
  return m;
}

// Pieces that BPE builds from characters: not control, unknown, unused, byte or "\n".
bool is_normal(const sentencepiece::SentencePieceProcessor& sp, int id) {
  return !sp.IsControl(id) && !sp.IsUnknown(id) && !sp.IsUnused(id) && !sp.IsByte(id) &&
         id != data::kNewlineId;
}

// The model must behave as difftx trains it: no dummy prefix, text kept as is.
void check_behaviour(const sentencepiece::SentencePieceProcessor& sp, const fs::path& path) {
  std::vector<std::string> pieces;
  (void)sp.Encode("a", &pieces);
  if (!pieces.empty() && pieces.front().rfind(kSpaceMarker, 0) == 0) {
    fail(
        "'{}' adds a dummy prefix space: only tokenizers trained by difftx (add_dummy_prefix "
        "false) can be exported to a Hugging Face tokenizer.json",
        path.string());
  }
  const std::string probe = "\xEF\xAC\x81 \xEF\xBC\xA1  x\ty\xC3\xBC";  // "ﬁ Ａ  x\tyü"
  std::vector<int> ids;
  std::string back;
  (void)sp.Encode(probe, &ids);
  (void)sp.Decode(ids, &back);
  if (back != probe) {
    fail(
        "'{}' normalises text (e.g. NFKC or whitespace folding): only tokenizers trained by "
        "difftx (identity normalisation) can be exported to a Hugging Face tokenizer.json",
        path.string());
  }
}

json added_token(int id, const std::string& content, bool special) {
  return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
              {"rstrip", false}, {"normalized", false}, {"special", special}};
}

struct Reserved {
  int id;
  const char* content;
  bool special;
};
constexpr Reserved kReserved[] = {{data::kPadId, "<pad>", true},
                                  {data::kBosId, "<s>", true},
                                  {data::kEosId, "</s>", true},
                                  {data::kUnkId, "<unk>", true},
                                  {data::kNewlineId, "\n", false}};

std::vector<std::pair<std::string, std::string>> merges_of(
    const sentencepiece::SentencePieceProcessor& sp) {
  std::map<std::string, int> normal;
  std::vector<int> order;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    if (!is_normal(sp, id)) continue;
    normal.emplace(sp.IdToPiece(id), id);
    order.push_back(id);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return sp.GetScore(a) > sp.GetScore(b); });
  std::vector<std::pair<std::string, std::string>> merges;
  for (int id : order) {
    const std::string& piece = sp.IdToPiece(id);
    std::vector<std::tuple<int, int, std::string, std::string>> local;
    for (std::size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80) continue;  // inside a character
      auto l = normal.find(piece.substr(0, k));
      auto r = normal.find(piece.substr(k));
      if (l != normal.end() && r != normal.end())
        local.emplace_back(l->second, r->second, l->first, r->first);
    }
    std::sort(local.begin(), local.end());
    for (const auto& e : local) merges.emplace_back(std::get<2>(e), std::get<3>(e));
  }
  return merges;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> bpe_merges(const fs::path& spm_model) {
  const SpModel m = load_sp(spm_model);
  return merges_of(*m.sp);
}

HfTokenizerFiles hf_tokenizer_files(const fs::path& spm_model, int model_max_length) {
  const SpModel m = load_sp(spm_model);
  const auto& sp = *m.sp;
  check_behaviour(sp, spm_model);
  HfTokenizerFiles files;
  files.vocab_size = sp.GetPieceSize();

  json vocab = json::object();
  for (int id = 0; id < sp.GetPieceSize(); ++id) vocab[sp.IdToPiece(id)] = id;
  json merges = json::array();
  for (auto& [l, r] : merges_of(sp)) merges.push_back(json::array({l, r}));

  json added = json::array();
  json added_decoder = json::object();
  for (const Reserved& r : kReserved) {
    if (sp.IdToPiece(r.id) != r.content) {
      fail("'{}': piece {} is \"{}\", expected \"{}\"", spm_model.string(), r.id,
           sp.IdToPiece(r.id), r.content);
    }
    added.push_back(added_token(r.id, r.content, r.special));
    json entry = added_token(r.id, r.content, r.special);
    entry.erase("id");
    added_decoder[std::to_string(r.id)] = entry;
  }

  json seq_a = json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  json seq_b = json{{"Sequence", {{"id", "B"}, {"type_id", 1}}}};
  files.tokenizer = json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Metaspace"},
        {"replacement", kSpaceMarker},
        {"prepend_scheme", "never"},
        {"split", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({seq_a})},
        {"pair", json::array({seq_a, seq_b})},
        {"special_tokens", json::object()}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         json::array(
             {json{{"type", "Replace"}, {"pattern", {{"String", kSpaceMarker}}}, {"content", " "}},
              json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};

  files.special_tokens_map = json{
      {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"pad_token", "<pad>"}};
  files.tokenizer_config = json{{"tokenizer_class", "PreTrainedTokenizerFast"},
                                {"bos_token", "<s>"},
                                {"eos_token", "</s>"},
                                {"unk_token", "<unk>"},
                                {"pad_token", "<pad>"},
                                {"add_bos_token", false},
                                {"add_eos_token", false},
                                {"clean_up_tokenization_spaces", false},
                                {"model_max_length", model_max_length},
                                {"added_tokens_decoder", added_decoder}};
  return files;
}

}  // namespace difftx::hf
