// A study's `data synth` recipes: the spec's options mapped onto the generators of the data
// layer (data/synth_mqar.h, data/synth_needle.h), and the folder each will produce (see
// synth_recipe.h).
#include "difftx/study/synth_recipe.h"

#include "difftx/core/error.h"
#include "difftx/data/synth_mqar.h"
#include "difftx/data/synth_needle.h"
#include "difftx/data/tokenizer.h"
#include "json_fields.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

data::MqarOptions mqar_options(const json& recipe, const std::string& where) {
  const Fields f(recipe, where,
                 {"kind", "vocab", "seq_len", "pairs", "noise", "power_a", "test_seq_len",
                  "test_pairs", "train_examples", "val_examples", "test_examples", "seed"});
  data::MqarOptions o;
  o.train.vocab_size = f.integer("vocab", o.train.vocab_size, 1);
  o.train.seq_len = f.integer("seq_len", o.train.seq_len, 1);
  o.train.pairs = f.integer("pairs", o.train.pairs, 1);
  o.train.noise = f.boolean("noise", o.train.noise);
  o.train.power_a = f.number("power_a", o.train.power_a);
  o.test_seq_len = f.integer("test_seq_len", o.test_seq_len, 0);
  o.test_pairs = f.integer("test_pairs", o.test_pairs, 0);
  o.train_examples = f.whole("train_examples", o.train_examples, 1);
  o.val_examples = f.whole("val_examples", o.val_examples, 1);
  o.test_examples = f.whole("test_examples", o.test_examples, 0);
  o.seed = f.whole("seed", o.seed, 0);
  data::MqarShape test = o.train;
  test.seq_len = o.test_seq_len > 0 ? o.test_seq_len : 2 * o.train.seq_len;
  test.pairs = o.test_pairs > 0 ? o.test_pairs : 2 * o.train.pairs;
  data::check_mqar_shape(o.train, where);
  if (o.test_examples > 0) data::check_mqar_shape(test, where + " (test_seq_len, test_pairs)");
  return o;
}

data::NeedleMixOptions needle_options(const json& recipe, const std::string& where) {
  const Fields f(recipe, where,
                 {"kind", "input", "brown_dir", "tokenizer", "vocab_size", "needle_fraction",
                  "context", "max_needles", "digits", "test_cities", "test_numbers",
                  "test_documents", "test_needles", "val_fraction", "seed"});
  data::NeedleMixOptions o;
  for (const json& v : f.array("input", false)) {
    if (!v.is_string()) f.bad("input", "an array of file or folder paths", f.at("input"));
    o.inputs.emplace_back(v.get<std::string>());
  }
  o.brown_dir = f.string("brown_dir", false);
  o.tokenizer = f.string("tokenizer", false);
  o.vocab_size = f.integer("vocab_size", o.vocab_size, 1);
  o.needle_fraction = f.number("needle_fraction", o.needle_fraction);
  o.context = f.integer("context", o.context, 1);
  o.max_needles = f.integer("max_needles", o.max_needles, 1);
  o.digits = f.integer("digits", o.digits, 1);
  o.test_cities = f.integer("test_cities", o.test_cities, 1);
  o.test_numbers = f.integer("test_numbers", o.test_numbers, 1);
  o.test_documents = f.integer("test_documents", o.test_documents, 1);
  o.test_needles = f.integer("test_needles", o.test_needles, 0);
  o.val_fraction = f.number("val_fraction", o.val_fraction);
  o.seed = f.whole("seed", o.seed, 0);
  return o;
}

std::string kind_of(const json& recipe, const std::string& where) {
  if (!recipe.is_object() || !recipe.contains("kind") || !recipe.at("kind").is_string()) {
    fail("{}: needs a 'kind' (\"mqar\" or \"needle-mix\")", where);
  }
  const std::string kind = recipe.at("kind").get<std::string>();
  if (kind != "mqar" && kind != "needle-mix") {
    fail(
        "{}: kind \"{}\" is not a study data recipe: use \"mqar\" or \"needle-mix\" (or prepare "
        "the data yourself and give its 'path')",
        where, kind);
  }
  return kind;
}

json mqar_shape_json(int seq_len, int pairs) {
  return {{"seq_len", seq_len}, {"record_tokens", seq_len + 1}, {"pairs", pairs}};
}

}  // namespace

void run_synth_recipe(const json& recipe, const fs::path& out, ProgressMode progress,
                      const std::string& where) {
  if (kind_of(recipe, where) == "mqar") {
    data::MqarOptions o = mqar_options(recipe, where);
    o.out_dir = out;
    o.progress = progress;
    data::write_mqar(o);
  } else {
    data::NeedleMixOptions o = needle_options(recipe, where);
    o.out_dir = out;
    o.progress = progress;
    data::write_needle_mix(o);
  }
}

DatasetInfo predict_synth_dataset(const json& recipe, const fs::path& dir,
                                  const std::string& dataset) {
  const std::string where = fmt::format("data set \"{}\" synth", dataset);
  DatasetInfo info;
  info.dir = dir;
  if (kind_of(recipe, where) == "mqar") {
    const data::MqarOptions o = mqar_options(recipe, where);
    const int test_len = o.test_seq_len > 0 ? o.test_seq_len : 2 * o.train.seq_len;
    const int test_pairs = o.test_pairs > 0 ? o.test_pairs : 2 * o.train.pairs;
    info.vocab_size = static_cast<std::uint32_t>(o.train.vocab_size);
    const SplitInfo train{static_cast<std::uint32_t>(o.train.seq_len + 1), true, 0};
    info.splits["train"] = train;
    info.splits["val"] = train;
    if (o.test_examples > 0) {
      info.splits["test"] = {static_cast<std::uint32_t>(test_len + 1), true, 0};
    }
    info.task = {{"kind", "mqar"},
                 {"train", mqar_shape_json(o.train.seq_len, o.train.pairs)},
                 {"validation", mqar_shape_json(o.train.seq_len, o.train.pairs)},
                 {"test", mqar_shape_json(test_len, test_pairs)}};
  } else {
    const data::NeedleMixOptions o = needle_options(recipe, where);
    info.vocab_size = static_cast<std::uint32_t>(
        o.tokenizer.empty() ? o.vocab_size : data::Tokenizer::load(o.tokenizer).vocab_size());
    for (const char* split : {"train", "val", "test"}) info.splits[split] = SplitInfo{};
    info.task = {{"kind", "needle-mix"}, {"context", o.context}, {"digits", o.digits}};
  }
  return info;
}

}  // namespace difftx::study
