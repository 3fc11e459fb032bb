// Shared helpers of the Hugging Face interoperability tests: small configs, randomised
// parameters, difftx logits on the CPU, a small tokenizer, and raw safetensors writing.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx::hf::testing {

// A folder under the temp dir, unique per test, removed at the end.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::filesystem::path dir(const std::string& name) const { return root_ / name; }
  std::filesystem::path root_;
};

// A tiny model: V1 (h heads of 2d, h_kv groups), softmax (h heads of d) or V2.
ModelConfig tiny_config(AttentionKind kind, int n_heads, int n_kv_heads, int head_dim,
                        RopeStyle rope, bool tied, bool gain, int vocab = 400);

// ParamSet::initialised with larger weights, norm gains 1 + N(0, 0.3) (per-head gain included)
// and lambda vectors N(0, 0.3), so every mapping detail changes the logits.
ParamSet random_params(const ModelConfig& config, std::uint64_t seed);

// difftx logits (T, V) of one sequence, CPU f32 backend.
std::vector<float> difftx_logits(const ModelConfig& config, const ParamSet& params,
                                 const std::vector<std::int32_t>& tokens);

// max |a - b| and max |b|.
double max_abs_diff(const std::vector<double>& a, const std::vector<float>& b);
double max_abs(const std::vector<float>& b);

// Deterministic token ids in [5, vocab).
std::vector<std::int32_t> test_tokens(int n, int vocab, std::uint64_t seed);

// Trains a small difftx tokenizer (vocab 400) on generated English-like text; cached per process.
std::filesystem::path small_tokenizer();
// Text with words, digits, punctuation, double spaces, newlines and non-ASCII characters.
std::string tokenizer_probe_text();

// Writes a safetensors file with the given dtype per tensor ("F16", "BF16", "F32"), converting
// from f32 (round to nearest even).
void write_safetensors_as(const std::filesystem::path& path,
                          const std::vector<std::pair<std::string, Tensor>>& tensors,
                          const std::string& dtype,
                          const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
// f32 -> f16 bits -> f32, as stored by write_safetensors_as(..., "F16").
float round_to_f16(float x);

// Expects `fn` to throw difftx::Error whose message contains every part.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error (expected one mentioning '" << (parts.empty() ? "" : parts[0])
                  << "')";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace difftx::hf::testing
