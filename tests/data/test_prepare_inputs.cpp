// `data prepare` inputs beyond plain text files: JSONL (a text field per line), gzip and zstd
// compression (the same shards as uncompressed), llm.c and nanoGPT token files, validation
// inputs, a reused tokenizer (issue 16), --input without --out (issue 16), and bad inputs (a
// FIFO in an input folder, truncated archives, JSON lines without the field).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <nlohmann/json.hpp>

#include "data_test_util.h"
#include "difftx/core/error.h"
#include "difftx/data/loader.h"
#include "difftx/data/prepare.h"
#include "difftx/data/shard.h"
#include "difftx/data/token_file.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace {

using test_util::run_cli;
using test_util::TempDir;
using test_util::write_text;

std::string gzip_bytes(const std::string& text) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd_bytes(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// JSONL documents built from the small corpus' files, one per line, with extra fields.
std::string jsonl_of(const fs::path& dir, int files) {
  std::string out;
  for (int f = 0; f < files; ++f) {
    const std::string text = read_file_text(dir / fmt::format("doc{:02}.txt", f));
    out += nlohmann::json{{"id", f}, {"text", text}, {"meta", {{"lang", "en"}}}}.dump() + "\n";
  }
  return out;
}

PrepareOptions quiet(const fs::path& out) {
  PrepareOptions o;
  o.out_dir = out;
  o.vocab_size = 400;
  o.progress = ProgressMode::quiet;
  return o;
}

std::string error_of(const PrepareOptions& o) {
  try {
    prepare_data(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DataPrepareInputs, JsonlPlainGzipAndZstdGiveTheSameShards) {
  TempDir tmp;
  test_util::write_small_corpus(tmp / "text", 40);
  const std::string jsonl = jsonl_of(tmp / "text", 40) + "\n" +          // a blank line is skipped
                            nlohmann::json{{"text", ""}}.dump() + "\n";  // an empty document
  write_text(tmp / "plain" / "docs.jsonl", jsonl);
  write_text(tmp / "gz" / "docs.jsonl.gz", gzip_bytes(jsonl));
  write_text(tmp / "zst" / "docs.jsonl.zst", zstd_bytes(jsonl));
  std::vector<std::vector<std::pair<std::string, std::string>>> outputs;
  for (const char* kind : {"plain", "gz", "zst"}) {
    PrepareOptions o = quiet(tmp / (std::string("out-") + kind));
    o.inputs = {tmp / kind};
    o.val_fraction = 0.2;
    const PrepareSummary s = prepare_data(o);
    EXPECT_EQ(s.documents, 40u) << kind;
    EXPECT_EQ(s.skipped_empty, 1u) << kind;
    EXPECT_GT(s.validation.documents, 0u) << kind;
    EXPECT_EQ(s.train.documents + s.validation.documents, 40u);
    auto contents = test_util::folder_digest(o.out_dir);
    for (auto& [name, digest] : contents) {
      if (name == "meta.json") digest.clear();  // names the input files
    }
    outputs.push_back(contents);
  }
  EXPECT_EQ(outputs[0], outputs[1]) << "gzip input must give the plain input's output";
  EXPECT_EQ(outputs[0], outputs[2]) << "zstd input must give the plain input's output";
  // Each document is one line's text, EOS after each: the shards decode to the documents.
  const Tokenizer tok = Tokenizer::load(tmp / "out-plain" / "tokenizer.model");
  std::string all;
  for (const char* split : {"train-00000.tokens", "val-00000.tokens"}) {
    std::vector<std::int32_t> doc;
    for (std::int32_t id : ShardReader(tmp / "out-plain" / split).read_all()) {
      if (id == kEosId) {
        all += tok.decode(doc) + "|";
        doc.clear();
      } else {
        doc.push_back(id);
      }
    }
  }
  for (int f = 0; f < 40; ++f) {
    const std::string text = read_file_text(tmp / "text" / fmt::format("doc{:02}.txt", f));
    EXPECT_NE(all.find(text + "|"), std::string::npos) << "document " << f;
  }
}

TEST(DataPrepareInputs, JsonlErrorsNameTheLine) {
  TempDir tmp;
  write_text(tmp / "a" / "x.jsonl", "{\"text\": \"fine\"}\n{\"body\": \"no text field\"}\n");
  PrepareOptions o = quiet(tmp / "out");
  o.inputs = {tmp / "a"};
  std::string msg = error_of(o);
  EXPECT_NE(msg.find("line 2 of '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no string field \"text\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("--jsonl-field"), std::string::npos) << msg;
  write_text(tmp / "a" / "x.jsonl", "{\"text\": \"fine\"}\n{not json\n");
  msg = error_of(o);
  EXPECT_NE(msg.find("line 2 of '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is not valid JSON"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp / "out")) << "a failed run must not leave its output folder";
  // --jsonl-field picks another field.
  test_util::write_small_corpus(tmp / "text", 30);
  std::string lines;
  for (int f = 0; f < 30; ++f) {
    lines += nlohmann::json{{"body", read_file_text(tmp / "text" / fmt::format("doc{:02}.txt", f))}}
                 .dump() +
             "\n";
  }
  write_text(tmp / "a" / "x.jsonl", lines);
  o.jsonl_field = "body";
  o.val_fraction = 0.3;
  EXPECT_EQ(prepare_data(o).documents, 30u);
}

TEST(DataPrepareInputs, CorruptOrTruncatedArchivesAreNamed) {
  TempDir tmp;
  test_util::write_small_corpus(tmp / "text", 2);
  const std::string text = read_file_text(tmp / "text" / "doc00.txt");
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"a.txt.gz", gzip_bytes(text)}, {"a.txt.zst", zstd_bytes(text)}}) {
    write_text(tmp / "c" / name, bytes.substr(0, bytes.size() / 2));
    PrepareOptions o = quiet(tmp / "out");
    o.inputs = {tmp / "c" / name};
    const std::string msg = error_of(o);
    EXPECT_NE(msg.find(name + "' is truncated"), std::string::npos) << msg;
    fs::remove(tmp / "c" / name);
  }
}

TEST(DataPrepareInputs, FifoInAnInputFolderIsRefusedByName) {
  TempDir tmp;
  test_util::write_small_corpus(tmp / "c", 3);
  ASSERT_EQ(::mkfifo((tmp / "c" / "stream.txt").c_str(), 0600), 0);
  const auto r = run_cli("data prepare --progress none --vocab-size 400 --input " +
                             (tmp / "c").string() + " --out " + (tmp / "out").string(),
                         tmp / "log.txt", 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("stream.txt' is a FIFO (named pipe), not a regular file"),
            std::string::npos)
      << r.output;
}

// Token files: llm.c (header + uint16), nanoGPT (raw uint16), llm.c version 2 (uint32).
void write_llmc(const fs::path& p, const std::vector<std::uint32_t>& ids, int version) {
  std::string bytes(1024, '\0');
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>(v >> (8 * i));
  };
  put32(0, static_cast<std::uint32_t>(kLlmcMagic));
  put32(4, static_cast<std::uint32_t>(version));
  put32(8, static_cast<std::uint32_t>(ids.size()));
  for (std::uint32_t v : ids) {
    for (int i = 0; i < (version == 1 ? 2 : 4); ++i) bytes += static_cast<char>(v >> (8 * i));
  }
  write_text(p, bytes);
}

void write_raw_u16(const fs::path& p, const std::vector<std::uint32_t>& ids) {
  std::string bytes;
  for (std::uint32_t v : ids) {
    bytes += static_cast<char>(v);
    bytes += static_cast<char>(v >> 8);
  }
  write_text(p, bytes);
}

std::vector<std::uint32_t> gpt2_like_ids(std::size_t n, std::uint64_t seed) {
  std::vector<std::uint32_t> ids;
  std::uint64_t x = seed;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    ids.push_back(i % 97 == 0 ? 50256u : static_cast<std::uint32_t>((x >> 33) % 50256));
  }
  return ids;
}

std::vector<std::int32_t> all_ids(const fs::path& dir, const std::string& prefix) {
  std::vector<std::int32_t> out;
  for (const auto& p : find_shards(dir, prefix)) {
    const auto v = ShardReader(p).read_all();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

TEST(DataPrepareInputs, LlmcAndNanoGptTokenFiles) {
  TempDir tmp;
  const auto train = gpt2_like_ids(30000, 1), val = gpt2_like_ids(5000, 2);
  write_llmc(tmp / "llmc" / "fineweb_train_000001.bin", train, 1);
  write_llmc(tmp / "llmc_val" / "fineweb_val_000000.bin", val, 1);
  write_raw_u16(tmp / "nano" / "train.bin", train);
  write_raw_u16(tmp / "nano_val" / "val.bin", val);
  for (const char* kind : {"llmc", "nano"}) {
    PrepareOptions o = quiet(tmp / (std::string("out-") + kind));
    o.vocab_size = 50257;
    o.eot_id = 50256;
    o.shard_tokens = 8192;
    o.inputs = {tmp / kind};
    o.validation_inputs = {tmp / (std::string(kind) + "_val")};
    const PrepareSummary s = prepare_data(o);
    EXPECT_TRUE(s.token_input);
    EXPECT_EQ(s.train.tokens, 30000u);
    EXPECT_EQ(s.validation.tokens, 5000u);
    EXPECT_EQ(s.train.documents, (30000u + 96u) / 97u) << "one EOT per document";
    EXPECT_GT(s.train.shards.size(), 3u);
    const auto got = all_ids(o.out_dir, "train");
    ASSERT_EQ(got.size(), train.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(static_cast<std::uint32_t>(got[i]), train[i]);
    const auto got_val = all_ids(o.out_dir, "val");
    EXPECT_EQ(got_val.size(), val.size());
    EXPECT_EQ(ShardReader(s.train.shards[0]).vocab_size(), 50257u);
    EXPECT_FALSE(fs::exists(o.out_dir / "tokenizer.model"));
    // The folder passes the whole-folder check and loads.
    LoaderOptions lo;
    lo.path = o.out_dir;
    lo.seq_len = 64;
    lo.batch_size = 4;
    EXPECT_NO_THROW(TrainLoader{lo});
  }
  // llm.c version 2 (uint32 ids), one file split at its tail.
  std::vector<std::uint32_t> big = gpt2_like_ids(10000, 3);
  big[5] = 100000;
  write_llmc(tmp / "v2.bin", big, 2);
  PrepareOptions o = quiet(tmp / "out-v2");
  o.inputs = {tmp / "v2.bin"};
  o.vocab_size = 128000;
  o.val_fraction = 0.1;
  const PrepareSummary s = prepare_data(o);
  EXPECT_EQ(s.train.tokens, 9000u);
  EXPECT_EQ(s.validation.tokens, 1000u);
  EXPECT_EQ(all_ids(o.out_dir, "train")[5], 100000);
}

TEST(DataPrepareInputs, TokenFileErrors) {
  TempDir tmp;
  write_llmc(tmp / "t" / "a.bin", gpt2_like_ids(1000, 1), 1);
  PrepareOptions o = quiet(tmp / "out");
  o.inputs = {tmp / "t"};
  o.vocab_size = 0;
  EXPECT_NE(error_of(o).find("--vocab-size N (50257 for GPT-2"), std::string::npos);
  o.vocab_size = 4096;
  std::string msg = error_of(o);
  EXPECT_NE(msg.find("outside the vocabulary of 4096"), std::string::npos) << msg;
  // A truncated llm.c file, an odd-sized raw file, text mixed with tokens.
  std::string bytes = read_file_text(tmp / "t" / "a.bin");
  write_text(tmp / "t" / "a.bin", bytes.substr(0, bytes.size() - 10));
  o.vocab_size = 50257;
  msg = error_of(o);
  EXPECT_NE(msg.find("has the wrong size"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  write_text(tmp / "t" / "a.bin", "abc");
  EXPECT_NE(error_of(o).find("its size, 3 bytes, is odd"), std::string::npos);
  write_raw_u16(tmp / "t" / "a.bin", gpt2_like_ids(1000, 1));
  write_text(tmp / "t" / "notes.txt", "some text");
  EXPECT_NE(error_of(o).find("mix token files"), std::string::npos);
}

TEST(DataPrepareInputs, InputWithoutOutDoesNotTouchTheBrownFolder) {
  // Issue 16: `data prepare --input X` used to write into data/brown, replacing the default
  // corpus' data without a word.
  TempDir tmp;
  test_util::write_small_corpus(tmp / "mine", 3);
  write_text(tmp / "work" / "data" / "brown" / "meta.json", "the default corpus' data");
  const std::string cmd = "cd " + (tmp / "work").string() + " && " + DIFFTX_CLI +
                          " data prepare --progress none --vocab-size 400 --input " +
                          (tmp / "mine").string() + " > " + (tmp / "log.txt").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  const std::string output = read_file_text(tmp / "log.txt");
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("difftx: error: --input needs --out"), std::string::npos) << output;
  EXPECT_EQ(read_file_text(tmp / "work" / "data" / "brown" / "meta.json"),
            "the default corpus' data");
  EXPECT_EQ(test_util::folder_contents(tmp / "work" / "data" / "brown").size(), 1u);
}

TEST(DataPrepareInputs, ReusesATokenizerFromAnotherDataSetOrACheckpoint) {
  // Issue 16: new data for an existing model needs the model's tokenizer, not a new one.
  TempDir tmp;
  test_util::write_small_corpus(tmp / "first", 6, 1);
  test_util::write_small_corpus(tmp / "second", 6, 7);
  PrepareOptions a = quiet(tmp / "a");
  a.inputs = {tmp / "first"};
  prepare_data(a);
  // As a checkpoint folder holds it.
  fs::create_directories(tmp / "ckpt");
  fs::copy_file(tmp / "a" / "tokenizer.model", tmp / "ckpt" / "tokenizer.model");
  const auto r = run_cli("data prepare --progress none --input " + (tmp / "second").string() +
                             " --tokenizer " + (tmp / "ckpt" / "tokenizer.model").string() +
                             " --out " + (tmp / "b").string(),
                         tmp / "log.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("reused " + (tmp / "ckpt" / "tokenizer.model").string()),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_file_text(tmp / "b" / "tokenizer.model"),
            read_file_text(tmp / "a" / "tokenizer.model"));
  const auto meta = nlohmann::json::parse(read_file_text(tmp / "b" / "meta.json"));
  EXPECT_EQ(meta["tokenizer"]["fingerprint"],
            Tokenizer::load(tmp / "a" / "tokenizer.model").fingerprint());
  EXPECT_EQ(ShardReader(tmp / "b" / "train-00000.tokens").vocab_size(), 400u);
  // The new shards are the reused tokenizer's encoding of the new text.
  const Tokenizer tok = Tokenizer::load(tmp / "a" / "tokenizer.model");
  const auto ids = ShardReader(tmp / "b" / "train-00000.tokens").read_all();
  const std::vector<std::int32_t> first(ids.begin(), std::find(ids.begin(), ids.end(), kEosId));
  EXPECT_NE(read_file_text(tmp / "second" / "doc00.txt").find(tok.decode(first)) +
                read_file_text(tmp / "second" / "doc01.txt").find(tok.decode(first)),
            2 * std::string::npos);
  // A conflicting --vocab-size, and a file that is not a tokenizer, are refused.
  PrepareOptions b = quiet(tmp / "c");
  b.inputs = {tmp / "second"};
  b.tokenizer = tmp / "a" / "tokenizer.model";
  b.vocab_size = 512;
  EXPECT_NE(error_of(b).find("differs from the 400 pieces"), std::string::npos);
  b.vocab_size = 0;
  b.tokenizer = tmp / "second" / "doc00.txt";
  EXPECT_NE(error_of(b).find("is not a SentencePiece model"), std::string::npos);
}

TEST(DataPrepareInputs, ValidationInputsAreTheValidationSplit) {
  TempDir tmp;
  test_util::write_small_corpus(tmp / "train", 5, 1);
  test_util::write_small_corpus(tmp / "held", 2, 9);
  PrepareOptions o = quiet(tmp / "out");
  o.inputs = {tmp / "train"};
  o.validation_inputs = {tmp / "held"};
  const PrepareSummary s = prepare_data(o);
  EXPECT_EQ(s.train.documents, 5u);
  EXPECT_EQ(s.validation.documents, 2u);
  const auto meta = nlohmann::json::parse(read_file_text(tmp / "out" / "meta.json"));
  EXPECT_EQ(meta["split"]["mode"], "inputs");
  EXPECT_EQ(meta["split"]["validation_documents"].size(), 2u);
}

}  // namespace
}  // namespace difftx::data
