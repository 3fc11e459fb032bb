// tokenizer.json for Hugging Face: its vocabulary and special tokens match the SentencePiece
// model, every merge is well formed, and a transcription of the `tokenizers` pipeline it
// describes (added tokens, Metaspace split, BPE by merge rank, byte fallback) gives exactly
// difftx's ids. Models trained with other SentencePiece settings are refused.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <map>
#include <random>
#include <unordered_map>

#include "difftx/data/tokenizer.h"
#include "difftx/hf/hf_tokenizer.h"
#include "hf_test_util.h"

namespace difftx::hf {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const std::string kMarker = "\xE2\x96\x81";

// Encodes `text` the way tokenizers does with the given tokenizer.json.
class HfBpe {
 public:
  explicit HfBpe(const json& tj) {
    for (auto it = tj.at("model").at("vocab").begin(); it != tj.at("model").at("vocab").end();
         ++it) {
      vocab_[it.key()] = it.value().get<int>();
    }
    int rank = 0;
    for (const auto& m : tj.at("model").at("merges")) {
      ranks_.emplace(std::make_pair(m.at(0).get<std::string>(), m.at(1).get<std::string>()),
                     rank++);
    }
    for (const auto& a : tj.at("added_tokens")) added_.emplace_back(a.at("content"), a.at("id"));
  }

  std::vector<std::int32_t> encode(const std::string& text) const {
    std::vector<std::int32_t> out;
    std::size_t start = 0, i = 0;
    while (i < text.size()) {
      bool matched = false;
      for (const auto& [content, id] : added_) {
        if (text.compare(i, content.size(), content) == 0) {
          encode_segment(text.substr(start, i - start), out);
          out.push_back(id);
          i += content.size();
          start = i;
          matched = true;
          break;
        }
      }
      if (!matched) ++i;
    }
    encode_segment(text.substr(start), out);
    return out;
  }

 private:
  // Metaspace (replacement U+2581, prepend never, split): a word starts at each marker.
  void encode_segment(const std::string& seg, std::vector<std::int32_t>& out) const {
    std::string s;
    for (char c : seg) s += c == ' ' ? kMarker : std::string(1, c);
    std::size_t begin = 0;
    for (std::size_t k = 1; k <= s.size(); ++k) {
      if (k == s.size() || s.compare(k, kMarker.size(), kMarker) == 0) {
        if (k > begin) encode_word(s.substr(begin, k - begin), out);
        begin = k;
      }
    }
  }

  void encode_word(const std::string& w, std::vector<std::int32_t>& out) const {
    std::vector<std::string> sym;
    for (std::size_t k = 0; k < w.size();) {
      std::size_t n = 1;
      while (k + n < w.size() && (static_cast<unsigned char>(w[k + n]) & 0xC0) == 0x80) ++n;
      const std::string ch = w.substr(k, n);
      if (vocab_.count(ch)) {
        sym.push_back(ch);
      } else {
        for (unsigned char b : ch) sym.push_back(fmt::format("<0x{:02X}>", b));
      }
      k += n;
    }
    while (sym.size() > 1) {
      int best = -1, best_rank = 0;
      for (std::size_t k = 0; k + 1 < sym.size(); ++k) {
        auto it = ranks_.find({sym[k], sym[k + 1]});
        if (it != ranks_.end() && (best < 0 || it->second < best_rank)) {
          best = static_cast<int>(k);
          best_rank = it->second;
        }
      }
      if (best < 0) break;
      sym[best] += sym[best + 1];
      sym.erase(sym.begin() + best + 1);
    }
    for (const auto& s : sym) out.push_back(vocab_.at(s));
  }

  std::map<std::string, int> vocab_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  std::vector<std::pair<std::string, int>> added_;
};

TEST(HfTokenizer, VocabularyAndSpecialTokens) {
  const fs::path model = testing::small_tokenizer();
  const data::Tokenizer tok = data::Tokenizer::load(model);
  const HfTokenizerFiles f = hf_tokenizer_files(model, 128);
  EXPECT_EQ(f.vocab_size, tok.vocab_size());
  const json& vocab = f.tokenizer.at("model").at("vocab");
  ASSERT_EQ(static_cast<int>(vocab.size()), tok.vocab_size());
  for (int id = 0; id < tok.vocab_size(); ++id) EXPECT_EQ(vocab.at(tok.piece(id)), id) << id;
  EXPECT_EQ(f.tokenizer.at("model").at("byte_fallback"), true);
  const json& added = f.tokenizer.at("added_tokens");
  ASSERT_EQ(added.size(), 5u);
  EXPECT_EQ(added[0].at("content"), "<pad>");
  EXPECT_EQ(added[1].at("content"), "<s>");
  EXPECT_EQ(added[1].at("id"), data::kBosId);
  EXPECT_EQ(added[2].at("id"), data::kEosId);
  EXPECT_EQ(added[3].at("id"), data::kUnkId);
  EXPECT_EQ(added[4].at("content"), "\n");
  EXPECT_EQ(added[4].at("special"), false);
  EXPECT_EQ(f.tokenizer_config.at("tokenizer_class"), "PreTrainedTokenizerFast");
  EXPECT_EQ(f.tokenizer_config.at("add_bos_token"), false);
  EXPECT_EQ(f.tokenizer_config.at("model_max_length"), 128);
  EXPECT_EQ(f.tokenizer_config.at("added_tokens_decoder").at("2").at("content"), "</s>");
  EXPECT_EQ(f.special_tokens_map.at("eos_token"), "</s>");
}

TEST(HfTokenizer, MergesAreWellFormed) {
  const fs::path model = testing::small_tokenizer();
  const auto merges = bpe_merges(model);
  const data::Tokenizer tok = data::Tokenizer::load(model);
  std::map<std::string, int> ids;
  for (int id = 0; id < tok.vocab_size(); ++id) ids[tok.piece(id)] = id;
  ASSERT_FALSE(merges.empty());
  for (const auto& [l, r] : merges) {
    EXPECT_TRUE(ids.count(l) && ids.count(r) && ids.count(l + r)) << l << " + " << r;
    EXPECT_GE(ids.at(l), data::kReservedCount);
    EXPECT_GE(ids.at(r), data::kReservedCount);
  }
}

TEST(HfTokenizer, PipelineReproducesDifftxIds) {
  const fs::path model = testing::small_tokenizer();
  const data::Tokenizer tok = data::Tokenizer::load(model);
  const HfBpe hf(hf_tokenizer_files(model, 64).tokenizer);
  std::vector<std::string> texts = {testing::tokenizer_probe_text(),
                                    "a",
                                    " a",
                                    "  ",
                                    "\n\n",
                                    "x\n y",
                                    "The model's attention, 1961.",
                                    "caf\xC3\xA9 \xE2\x82\xAC"
                                    "5"};
  std::mt19937_64 rng(7);
  const std::string chars = "abcdefghijklmnopqrstuvwxyz  ,.'0123456789\n";
  for (int n = 0; n < 200; ++n) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int k = 0; k < len; ++k) s += chars[rng() % chars.size()];
    texts.push_back(s);
  }
  for (const auto& t : texts) EXPECT_EQ(hf.encode(t), tok.encode(t)) << "text: [" << t << "]";
}

// Trains a SentencePiece BPE model with difftx's reserved ids but one setting changed.
fs::path train_variant(const std::string& name, const std::string& key, const std::string& value) {
  std::unordered_map<std::string, std::string> args = {{"model_type", "bpe"},
                                                       {"vocab_size", "300"},
                                                       {"byte_fallback", "true"},
                                                       {"normalization_rule_name", "identity"},
                                                       {"remove_extra_whitespaces", "false"},
                                                       {"add_dummy_prefix", "false"},
                                                       {"pad_id", "0"},
                                                       {"bos_id", "1"},
                                                       {"eos_id", "2"},
                                                       {"unk_id", "3"},
                                                       {"user_defined_symbols", "\n"},
                                                       {"character_coverage", "1.0"},
                                                       {"num_threads", "1"},
                                                       {"minloglevel", "2"}};
  args[key] = value;
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i)
    lines.push_back(fmt::format("line {} of the ﬁle with words and more words {}", i, i * 7));
  class It : public sentencepiece::SentenceIterator {
   public:
    explicit It(const std::vector<std::string>& v) : v_(v) {}
    bool done() const override { return i_ >= v_.size(); }
    void Next() override { ++i_; }
    const std::string& value() const override { return v_[i_]; }
    sentencepiece::util::Status status() const override { return {}; }

   private:
    const std::vector<std::string>& v_;
    std::size_t i_ = 0;
  } it(lines);
  std::string serialized;
  EXPECT_TRUE(sentencepiece::SentencePieceTrainer::Train(args, &it, &serialized).ok());
  const fs::path p =
      fs::temp_directory_path() / fmt::format("difftx_hf_{}_{}.model", ::getpid(), name);
  data::Tokenizer::from_serialized(serialized, name).save(p);
  return p;
}

TEST(HfTokenizer, RefusesOtherSentencePieceSettings) {
  const fs::path prefix = train_variant("prefix", "add_dummy_prefix", "true");
  testing::expect_error([&] { (void)hf_tokenizer_files(prefix, 64); }, {"dummy prefix"});
  const fs::path nfkc = train_variant("nfkc", "normalization_rule_name", "nmt_nfkc");
  testing::expect_error([&] { (void)hf_tokenizer_files(nfkc, 64); }, {"normalises text"});
  fs::remove(prefix);
  fs::remove(nfkc);
}

}  // namespace
}  // namespace difftx::hf
