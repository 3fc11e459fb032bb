// Helpers of the Hugging Face interoperability tests (see hf_test_util.h).
#include "hf_test_util.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/data/tokenizer.h"
#include "difftx/model/model.h"

namespace difftx::hf::testing {
namespace fs = std::filesystem;

void TempDirTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  root_ = fs::temp_directory_path() /
          fmt::format("difftx_hf_{}_{}_{}", ::getpid(), info->test_suite_name(), info->name());
  fs::remove_all(root_);
  fs::create_directories(root_);
}

void TempDirTest::TearDown() {
  fs::remove_all(root_);
}

ModelConfig tiny_config(AttentionKind kind, int n_heads, int n_kv_heads, int head_dim,
                        RopeStyle rope, bool tied, bool gain, int vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.attention = kind;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = head_dim;
  c.d_model = (kind == AttentionKind::diff_v1 ? 2 : 1) * n_heads * head_dim;
  c.n_layers = 2;
  c.ffn_dim = 48;
  c.rope_theta = 10000.0;
  c.rope_style = rope;
  c.norm_eps = 1e-5;
  c.head_norm_gain = gain && kind == AttentionKind::diff_v1;
  c.tied_embeddings = tied;
  c.max_seq_len = 64;
  c.init_std = 0.2;
  c.validate("tiny_config");
  return c;
}

ParamSet random_params(const ModelConfig& config, std::uint64_t seed) {
  ParamSet p = ParamSet::initialised(config, seed, DType::f32, Device::cpu);
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const std::string& name = p.name(i);
    const bool norm = name.find("norm.weight") != std::string::npos;
    const bool lambda = name.find("lambda_") != std::string::npos;
    if (!norm && !lambda) continue;
    float* v = p.tensor(i).data<float>();
    for (std::int64_t k = 0; k < p.tensor(i).numel(); ++k) {
      v[k] = static_cast<float>(norm ? 1.0 + 0.3 * normal(rng) : 0.3 * normal(rng));
    }
  }
  return p;
}

std::vector<float> difftx_logits(const ModelConfig& config, const ParamSet& params,
                                 const std::vector<std::int32_t>& tokens) {
  auto backend = make_cpu_backend(DType::f32);
  ParamSet copy;
  for (std::size_t i = 0; i < params.size(); ++i)
    copy.add(params.name(i), params.tensor(i).clone());
  Model model(config, *backend, std::move(copy));
  Tensor ids = Tensor::empty({1, static_cast<std::int64_t>(tokens.size())}, DType::i32);
  std::memcpy(ids.raw(), tokens.data(), tokens.size() * sizeof(std::int32_t));
  return model.logits(ids).to_float_vector();
}

double max_abs_diff(const std::vector<double>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::abs(a[i] - double(b[i])));
  return m;
}

double max_abs(const std::vector<float>& b) {
  double m = 0;
  for (float x : b) m = std::max(m, std::abs(double(x)));
  return m;
}

std::vector<std::int32_t> test_tokens(int n, int vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(5, vocab - 1);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = dist(rng);
  return t;
}

namespace {

const char* const kWords[] = {"the",
                              "of",
                              "and",
                              "to",
                              "in",
                              "a",
                              "is",
                              "that",
                              "for",
                              "it",
                              "as",
                              "was",
                              "with",
                              "be",
                              "by",
                              "on",
                              "not",
                              "he",
                              "this",
                              "are",
                              "or",
                              "his",
                              "from",
                              "at",
                              "which",
                              "but",
                              "have",
                              "an",
                              "had",
                              "they",
                              "you",
                              "were",
                              "their",
                              "one",
                              "all",
                              "we",
                              "can",
                              "her",
                              "has",
                              "there",
                              "been",
                              "if",
                              "more",
                              "when",
                              "will",
                              "would",
                              "who",
                              "so",
                              "attention",
                              "differential",
                              "transformer",
                              "noise",
                              "signal",
                              "softmax",
                              "lambda",
                              "heads",
                              "keys",
                              "values",
                              "queries",
                              "model",
                              "language",
                              "training",
                              "tokens",
                              "layer",
                              "norm",
                              "gradient",
                              "learning",
                              "rate",
                              "batch",
                              "sequence",
                              "context",
                              "retrieval",
                              "needle",
                              "haystack",
                              "quantization",
                              "outliers",
                              "activation",
                              "weights",
                              "running",
                              "jumping",
                              "quickly",
                              "slowly",
                              "brown",
                              "fox",
                              "lazy",
                              "dog",
                              "river",
                              "mountain",
                              "city",
                              "village",
                              "summer",
                              "winter",
                              "morning",
                              "evening",
                              "1961",
                              "2025",
                              "42",
                              "3.14",
                              "100%",
                              "(note)",
                              "[ref]",
                              "e.g.",
                              "don't",
                              "it's",
                              "U.S.",
                              "co-op",
                              "self-attention",
                              "half-split",
                              "re-use"};

}  // namespace

fs::path small_tokenizer() {
  static const fs::path path = [] {
    std::mt19937_64 rng(20250101);
    std::uniform_int_distribution<std::size_t> word(0, std::size(kWords) - 1);
    std::uniform_int_distribution<int> len(4, 16);
    std::vector<std::string> sentences;
    for (int s = 0; s < 4000; ++s) {
      std::string line;
      const int n = len(rng);
      for (int w = 0; w < n; ++w) {
        if (w) line += ' ';
        std::string x = kWords[word(rng)];
        if (w == 0) x[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(x[0])));
        line += x;
      }
      line += (s % 3 == 0) ? "." : (s % 3 == 1 ? "," : "?");
      if (s % 50 == 0) line += " caf\xC3\xA9 na\xC3\xAFve";  // a few non-ASCII characters
      sentences.push_back(line);
    }
    data::TokenizerTrainOptions options;
    options.vocab_size = 400;
    options.character_coverage = 1.0;
    const data::Tokenizer tok = data::Tokenizer::train(sentences, options);
    const fs::path p =
        fs::temp_directory_path() / fmt::format("difftx_hf_tokenizer_{}.model", ::getpid());
    tok.save(p);
    return p;
  }();
  return path;
}

std::string tokenizer_probe_text() {
  return "The differential transformer cancels attention noise, as the paper notes (2025).\n"
         "Keys  and values: 3.14 vs 42; don't re-use the lazy dog's 100% brown fox!\n"
         "\n  Indented line with caf\xC3\xA9, na\xC3\xAFve, \xE4\xB8\xAD\xE6\x96\x87 and an emoji "
         "\xF0\x9F\x98\x80 plus a tab\there.";
}

namespace {

std::uint16_t f32_to_f16_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::int32_t exp = static_cast<std::int32_t>((x >> 23) & 0xff) - 127 + 15;
  std::uint32_t mant = x & 0x7fffffu;
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (exp <= 0) {
    if (exp < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    std::uint32_t half = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into the exponent
  return static_cast<std::uint16_t>(sign | half);
}

float f16_bits_to_f32(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  const int exp = (h >> 10) & 0x1f;
  const std::uint32_t mant = h & 0x3ffu;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mant | 0x400u), exp - 25);
  return sign ? -v : v;
}

}  // namespace

float round_to_f16(float x) {
  return f16_bits_to_f32(f32_to_f16_bits(x));
}

void write_safetensors_as(const fs::path& path,
                          const std::vector<std::pair<std::string, Tensor>>& tensors,
                          const std::string& dtype,
                          const std::map<std::string, std::string>& metadata) {
  const std::size_t width = dtype == "F32" ? 4 : 2;
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& [name, t] : tensors) {
    const std::vector<float> v = t.to_float_vector();
    const std::size_t begin = data.size();
    for (float f : v) {
      if (dtype == "F32") {
        data.append(reinterpret_cast<const char*>(&f), 4);
      } else {
        const std::uint16_t bits = dtype == "F16" ? f32_to_f16_bits(f) : float_to_bf16(f);
        data.append(reinterpret_cast<const char*>(&bits), 2);
      }
    }
    header[name] = {{"dtype", dtype},
                    {"shape", t.shape()},
                    {"data_offsets", {begin, begin + v.size() * width}}};
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << h << data;
}

}  // namespace difftx::hf::testing
