// `difftx data prepare` end to end: the default Brown corpus, user text files, and bad input
// (empty corpus, binary file, a 100 MB line, missing paths, unwritable output), each with a
// clear error and no half-written output.
#include <gtest/gtest.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "data_test_util.h"
#include "difftx/core/error.h"
#include "difftx/data/loader.h"
#include "difftx/data/prepare.h"
#include "difftx/data/shard.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace {

using test_util::run_cli;
using test_util::TempDir;
using test_util::write_text;

using test_util::write_small_corpus;

PrepareOptions quiet_options(const fs::path& out) {
  PrepareOptions o;
  o.out_dir = out;
  o.vocab_size = 400;
  o.progress = ProgressMode::quiet;
  return o;
}

std::string prepare_error(const PrepareOptions& o) {
  try {
    prepare_data(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DataPrepare, DefaultBrownCorpusThroughTheCli) {
  const fs::path brown = test_util::brown_dir_or_fail();
  TempDir tmp;
  const fs::path out = tmp / "brown";
  const auto r = run_cli(
      "data prepare --progress lines --brown-dir " + brown.string() + " --out " + out.string(),
      tmp / "log.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("documents  500 (475 train, 25 validation)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("bytes/token"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("training tokenizer"), std::string::npos) << r.output;

  const auto meta = nlohmann::json::parse(read_file_text(out / "meta.json"));
  EXPECT_EQ(meta["corpus"]["documents"], 500);
  EXPECT_EQ(meta["tokenizer"]["vocab_size"], 4096);
  EXPECT_EQ(meta["train"]["documents"], 475);
  EXPECT_EQ(meta["validation"]["documents"], 25);
  const double bpt = meta["bytes_per_token"].get<double>();
  EXPECT_GT(bpt, 3.0);
  EXPECT_LT(bpt, 4.5);

  // The validation shard decodes to exactly the validation documents, EOS after each.
  const Tokenizer tok = Tokenizer::load(out / "tokenizer.model");
  EXPECT_EQ(tok.fingerprint(), meta["tokenizer"]["fingerprint"]);
  ShardReader val(out / "val-00000.tokens");
  EXPECT_EQ(val.header().document_count, 25u);
  const auto ids = val.read_all();
  std::vector<std::string> decoded;
  std::vector<std::int32_t> doc;
  for (std::int32_t id : ids) {
    if (id == kEosId) {
      decoded.push_back(tok.decode(doc));
      doc.clear();
    } else {
      doc.push_back(id);
    }
  }
  EXPECT_TRUE(doc.empty()) << "the shard must end with EOS";
  const auto keys = meta["split"]["validation_documents"].get<std::vector<std::string>>();
  ASSERT_EQ(decoded.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(decoded[i], brown_to_text(read_file_text(brown / keys[i]))) << keys[i];
  }
  // Loaders work on the result.
  LoaderOptions lo;
  lo.path = out;
  lo.seq_len = 128;
  lo.batch_size = 4;
  TrainLoader train(lo);
  EXPECT_EQ(train.shards().vocab_size(), 4096u);
  EXPECT_GT(train.steps_in_epoch(), 1000u);
  lo.split = "val";
  EvalLoader eval(lo);
  EXPECT_EQ(eval.total_targets(), ids.size() - 1);

  // `data info` verifies and lists the shards.
  const auto info = run_cli("data info " + out.string(), tmp / "info.txt");
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("val-00000.tokens"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("(verified)"), std::string::npos) << info.output;
}

TEST(DataPrepare, UserFilesSplitShardsAndRerun) {
  TempDir tmp;
  write_small_corpus(tmp / "corpus", 12);
  write_text(tmp / "corpus" / "empty.txt", "");
  write_text(tmp / "corpus" / ".hidden" / "secret.bin", std::string("\0\1\2", 3));
  PrepareOptions o = quiet_options(tmp / "out");
  o.inputs = {tmp / "corpus"};
  o.val_fraction = 0.25;
  o.shard_tokens = 4000;
  const PrepareSummary s = prepare_data(o);
  EXPECT_EQ(s.documents, 12u);
  EXPECT_EQ(s.skipped_empty, 1u);
  EXPECT_EQ(s.validation.documents, 3u);
  EXPECT_EQ(s.train.documents, 9u);
  EXPECT_GT(s.train.shards.size(), 1u);  // small shards: the stream is split over files
  std::uint64_t tokens = 0;
  for (const auto& p : s.train.shards) {
    ShardReader r(p);
    EXPECT_LE(r.size(), 4000u);
    tokens += r.size();
  }
  EXPECT_EQ(tokens, s.train.tokens);
  EXPECT_FALSE(format_summary(s).empty());
  // The same input and seed give byte-identical output.
  const auto first = test_util::folder_contents(tmp / "out");
  prepare_data(o);
  EXPECT_EQ(test_util::folder_contents(tmp / "out"), first);
  // A rerun with bigger shards replaces the old set completely.
  o.shard_tokens = 1'000'000;
  const PrepareSummary s2 = prepare_data(o);
  EXPECT_EQ(s2.train.shards.size(), 1u);
  std::size_t shard_files = 0;
  for (const auto& e : fs::directory_iterator(tmp / "out")) {
    shard_files += e.path().extension() == ".tokens";
    EXPECT_NE(e.path().filename().string()[0], '.') << "staging left behind: " << e.path();
  }
  EXPECT_EQ(shard_files, 2u);
}

TEST(DataPrepare, SingleFileIsSplitAtItsTail) {
  TempDir tmp;
  write_small_corpus(tmp / "c", 1);
  PrepareOptions o = quiet_options(tmp / "out");
  o.inputs = {tmp / "c" / "doc00.txt"};
  o.val_fraction = 0.2;
  const PrepareSummary s = prepare_data(o);
  EXPECT_EQ(s.documents, 1u);
  EXPECT_EQ(s.validation.documents, 1u);
  const double share = static_cast<double>(s.validation.bytes) / s.bytes();
  EXPECT_NEAR(share, 0.2, 0.1);
}

// ---- Bad input: a clear error, and the output folder unchanged (or never created). -------

TEST(DataPrepareErrors, EmptyCorpus) {
  TempDir tmp;
  fs::create_directories(tmp / "empty");
  PrepareOptions o = quiet_options(tmp / "out");
  o.inputs = {tmp / "empty"};
  std::string msg = prepare_error(o);
  EXPECT_NE(msg.find("the corpus is empty"), std::string::npos) << msg;
  write_text(tmp / "empty" / "a.txt", "");
  write_text(tmp / "empty" / "b.txt", "");
  msg = prepare_error(o);
  EXPECT_NE(msg.find("all empty"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

TEST(DataPrepareErrors, BinaryFileIsNamedAndNothingIsWritten) {
  TempDir tmp;
  write_small_corpus(tmp / "c", 4);
  // An earlier good result in the output folder must survive the failed run untouched.
  PrepareOptions o = quiet_options(tmp / "out");
  o.inputs = {tmp / "c"};
  prepare_data(o);
  const auto before = test_util::folder_contents(tmp / "out");
  std::string binary = "PK\x03\x04 some zip header";
  binary += std::string(1, '\0') + "\xFF\xFE";
  write_text(tmp / "c" / "archive.zip", binary);
  const auto r = run_cli("data prepare --progress none --vocab-size 400 --input " +
                             (tmp / "c").string() + " --out " + (tmp / "out").string(),
                         tmp / "log.txt");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("difftx: error: '" + (tmp / "c" / "archive.zip").string() +
                          "' is not UTF-8 text"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(test_util::folder_contents(tmp / "out"), before);
  // Invalid UTF-8 without NUL bytes is refused too.
  write_text(tmp / "c" / "archive.zip", "latin-1 text: caf\xE9 au lait\n");
  const std::string msg = prepare_error(o);
  EXPECT_NE(msg.find("invalid UTF-8 (byte 0xE9) at byte 17 (line 1)"), std::string::npos) << msg;
}

TEST(DataPrepareErrors, MissingPaths) {
  TempDir tmp;
  PrepareOptions o = quiet_options(tmp / "out");
  o.inputs = {tmp / "no-such-file.txt"};
  std::string msg = prepare_error(o);
  EXPECT_NE(msg.find("no-such-file.txt' does not exist"), std::string::npos) << msg;
  o.inputs.clear();
  o.brown_dir = tmp / "no-brown-here";
  msg = prepare_error(o);
  EXPECT_NE(msg.find("scripts/fetch-corpus.sh"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp / "out"));
  const auto r = run_cli("data info " + (tmp / "nothing").string(), tmp / "log.txt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("nothing"), std::string::npos) << r.output;
}

TEST(DataPrepareErrors, UnwritableOutputFolder) {
  TempDir tmp;
  write_small_corpus(tmp / "c", 3);
  PrepareOptions o = quiet_options(tmp / "c" / "doc00.txt" / "out");  // under a file
  o.inputs = {tmp / "c"};
  std::string msg = prepare_error(o);
  EXPECT_NE(msg.find("is not a folder"), std::string::npos) << msg;
  if (::geteuid() != 0) {
    fs::create_directories(tmp / "locked");
    fs::permissions(tmp / "locked", fs::perms::owner_read | fs::perms::owner_exec);
    o.out_dir = tmp / "locked" / "out";
  } else {
    o.out_dir = "/proc/difftx-test-out";  // even root cannot create entries here
  }
  msg = prepare_error(o);
  EXPECT_NE(msg.find("cannot be written"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--out"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(o.out_dir));
}

TEST(DataPrepareErrors, BadOptions) {
  TempDir tmp;
  PrepareOptions o = quiet_options(tmp / "out");
  o.inputs = {tmp.path()};
  o.vocab_size = 10;
  EXPECT_NE(prepare_error(o).find("--vocab-size 10"), std::string::npos);
  o.vocab_size = 400;
  o.val_fraction = 0.9;
  EXPECT_NE(prepare_error(o).find("--val-fraction"), std::string::npos);
  const auto r = run_cli("data prepare --vocab-size lots", tmp / "log.txt");
  EXPECT_NE(r.exit_code, 0);
}

TEST(DataPrepareErrors, HundredMegabyteSingleLineIsHandledInBoundedMemory) {
  TempDir tmp;
  const fs::path big = tmp / "one-line.txt";
  {
    // 100 MB of words separated by spaces, without a single newline.
    const char* words[] = {"lorem",      "ipsum", "dolor", "sit", "amet",    "consectetur",
                           "adipiscing", "elit",  "sed",   "do",  "eiusmod", "tempor"};
    std::string chunk;
    std::uint64_t x = 3;
    while (chunk.size() < (1u << 20)) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      chunk += words[(x >> 33) % 12];
      chunk += ' ';
    }
    std::ofstream f(big, std::ios::binary);
    for (int i = 0; i < 100; ++i) f.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  }
  ASSERT_GE(fs::file_size(big), 100u << 20);
  const auto r = run_cli(
      "data prepare --progress lines --vocab-size 400 "
      "--tokenizer-sample-bytes 4000000 --input " +
          big.string() + " --out " + (tmp / "out").string(),
      tmp / "log.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("documents  1 (1 train, 1 validation)"), std::string::npos) << r.output;
  // Text (100 MB) + ids in flight: far below what encoding the line in one piece would take.
  EXPECT_LT(r.max_rss_kib, 1'200'000) << "peak memory " << r.max_rss_kib << " KiB";
  std::cout << "peak memory of `difftx data prepare` on a 100 MB line: " << r.max_rss_kib / 1024
            << " MiB\n"
            << r.output;
  ShardReader val(tmp / "out" / "val-00000.tokens");
  EXPECT_GT(val.size(), 500'000u);  // 5 MB of text
  const Tokenizer tok = Tokenizer::load(tmp / "out" / "tokenizer.model");
  std::vector<std::int32_t> head(1000);
  val.copy(0, head.size(), head.data());
  EXPECT_NE(tok.decode(head).find("lorem"), std::string::npos);
}

}  // namespace
}  // namespace difftx::data
