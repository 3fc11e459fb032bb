// Whole-folder checks of prepared data (see data_folder.h).
#include "difftx/data/data_folder.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/file_check.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string rerun(const fs::path& dir) {
  return fmt::format(
      "re-run `difftx data prepare --out {}` (or the `difftx data synth` command "
      "that made it)",
      dir.string());
}

// The header of a shard, read from its first 64 bytes (the payload is not read).
ShardHeader read_header(const fs::path& path) {
  require_regular_file(path, "token shard", "remove it or re-run `difftx data prepare`");
  std::ifstream in(path, std::ios::binary);
  char bytes[ShardHeader::kSize];
  in.read(bytes, sizeof bytes);
  const auto got = static_cast<std::size_t>(in.gcount());
  return parse_shard_header(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes), got), path.string());
}

// Shard-like entries of the folder (<prefix>-NNNNN.tokens), each required to be a regular file.
std::map<std::string, std::vector<fs::path>> list_shard_entries(const fs::path& dir) {
  static const std::regex name(R"(([a-z][a-z0-9_]*)-[0-9]{5}\.tokens)");
  std::map<std::string, std::vector<fs::path>> found;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) fail("cannot list data folder '{}': {}", dir.string(), ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) fail("cannot list data folder '{}': {}", dir.string(), ec.message());
    const std::string file = it->path().filename().string();
    std::smatch m;
    if (!std::regex_match(file, m, name)) continue;
    require_regular_file(it->path(), "token shard",
                         "replace it with the shard file or re-run `difftx data prepare`");
    found[m[1].str()].push_back(it->path());
  }
  for (auto& [prefix, paths] : found) std::sort(paths.begin(), paths.end());
  return found;
}

json read_meta(const fs::path& path) {
  require_regular_file(path, "data set description", "re-run `difftx data prepare`");
  json meta;
  try {
    meta = json::parse(read_file_text(path));
  } catch (const json::exception& e) {
    fail("'{}' is not valid JSON ({}): {}", path.string(), e.what(), rerun(path.parent_path()));
  }
  if (!meta.is_object() || meta.value("format", std::string()) != kMetaFormat) {
    fail("'{}' is not a difftx data set description (no \"format\": \"{}\"): {}", path.string(),
         kMetaFormat, rerun(path.parent_path()));
  }
  const json version = meta.value("version", json());
  if (!version.is_number_integer() || version.get<std::int64_t>() != kMetaVersion) {
    fail(
        "'{}' describes data of format version {}, this difftx reads version {} (shards with "
        "XXH3 checksums): {}",
        path.string(), version.dump(), kMetaVersion, rerun(path.parent_path()));
  }
  return meta;
}

// Compares meta.json's shard list of one split with the files in the folder.
void check_listed_shards(const fs::path& dir, const json& split, const SplitName& name,
                         const std::vector<fs::path>& present) {
  const fs::path meta_path = dir / kMetaFile;
  const json shards = split.value("shards", json::array());
  if (!shards.is_array()) {
    fail("'{}': \"{}.shards\" is not a list: {}", meta_path.string(), name.key, rerun(dir));
  }
  std::set<std::string> listed;
  for (const json& entry : shards) {
    if (!entry.is_object() || !entry.contains("file") || !entry["file"].is_string()) {
      fail("'{}': an entry of \"{}.shards\" has no \"file\": {}", meta_path.string(), name.key,
           rerun(dir));
    }
    const std::string file = entry["file"].get<std::string>();
    if (file.rfind(std::string(name.prefix) + "-", 0) != 0 || file.find('/') != std::string::npos) {
      fail(
          "'{}' lists '{}' as a {} shard, but {} shards are named {}-NNNNN.tokens in the same "
          "folder: {}",
          meta_path.string(), file, name.key, name.key, name.prefix, rerun(dir));
    }
    listed.insert(file);
    const fs::path path = dir / file;
    const std::string kind = describe_path_kind(path);
    if (kind == "missing") {
      fail("'{}' lists the {} shard '{}', which is missing from '{}': restore it or {}",
           meta_path.string(), name.key, file, dir.string(), rerun(dir));
    }
    const ShardHeader h = read_header(path);
    const json tokens = entry.value("tokens", json());
    if (tokens.is_number_unsigned() && tokens.get<std::uint64_t>() != h.token_count) {
      fail(
          "shard '{}' holds {} tokens, but '{}' lists {}: the shard is not the one this data "
          "set was prepared with; {}",
          path.string(), h.token_count, meta_path.string(), tokens.get<std::uint64_t>(),
          rerun(dir));
    }
    const json checksum = entry.value("checksum", json());
    if (checksum.is_string() && checksum.get<std::string>() != checksum_text(h.payload_checksum)) {
      fail(
          "shard '{}' has payload checksum {}, but '{}' lists {}: the shard is not the one this "
          "data set was prepared with; {}",
          path.string(), checksum_text(h.payload_checksum), meta_path.string(),
          checksum.get<std::string>(), rerun(dir));
    }
  }
  for (const fs::path& p : present) {
    const std::string file = p.filename().string();
    if (!listed.count(file)) {
      fail(
          "'{}' is in '{}' but not listed in its {} (a leftover of another preparation?): "
          "remove it or {}",
          file, dir.string(), kMetaFile, rerun(dir));
    }
  }
}

}  // namespace

std::string shard_file_name(const std::string& prefix, std::size_t index) {
  return fmt::format("{}-{:05}.tokens", prefix, index);
}

json shard_entry_json(const std::string& file, const ShardHeader& header) {
  return {{"file", file},
          {"tokens", header.token_count},
          {"documents", header.document_count},
          {"checksum", checksum_text(header.payload_checksum)}};
}

DataFolderInfo check_data_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    const std::string kind = describe_path_kind(dir);
    if (kind == "missing") {
      fail(
          "token data '{}' does not exist: pass a shard file or the folder written by `difftx "
          "data prepare`",
          dir.string());
    }
    fail("data folder '{}' is {}: pass the folder written by `difftx data prepare`", dir.string(),
         kind);
  }
  DataFolderInfo info;
  info.dir = dir;
  info.shards = list_shard_entries(dir);

  // meta.json: every listed shard present, nothing unlisted.
  const fs::path meta_path = dir / kMetaFile;
  json meta;
  if (describe_path_kind(meta_path) != "missing") {
    meta = read_meta(meta_path);
    info.has_meta = true;
    for (const SplitName& name : kSplits) {
      auto present = info.shards.find(name.prefix);
      const std::vector<fs::path> none;
      if (meta.contains(name.key)) {
        check_listed_shards(dir, meta[name.key], name,
                            present == info.shards.end() ? none : present->second);
      } else if (present != info.shards.end()) {
        fail(
            "'{}' holds {} shards ({}), but its {} has no \"{}\" split (a leftover of another "
            "preparation?): remove them or {}",
            dir.string(), name.key, present->second.front().filename().string(), kMetaFile,
            name.key, rerun(dir));
      }
    }
  }

  // One vocabulary over every split.
  fs::path first;
  for (const auto& [prefix, paths] : info.shards) {
    for (const fs::path& p : paths) {
      const ShardHeader h = read_header(p);
      if (info.vocab_size == 0) {
        info.vocab_size = h.vocab_size;
        first = p;
      } else if (h.vocab_size != info.vocab_size) {
        fail(
            "shard '{}' has vocabulary size {}, but '{}' has {}: the folder mixes data made "
            "with two tokenizers; {}",
            p.string(), h.vocab_size, first.string(), info.vocab_size, rerun(dir));
      }
    }
  }

  // The tokenizer loads and matches the shards.
  const fs::path tok_path = dir / kTokenizerFile;
  const std::string tok_kind = describe_path_kind(tok_path);
  const bool meta_names_tokenizer = info.has_meta && meta.contains("tokenizer") &&
                                    meta["tokenizer"].is_object() &&
                                    meta["tokenizer"].contains("file");
  if (tok_kind != "missing" || meta_names_tokenizer) {
    require_regular_file(
        tok_path, "tokenizer model",
        fmt::format("put the SentencePiece model of this data there or {}", rerun(dir)));
    if (fs::file_size(tok_path, ec) == 0) {
      fail("tokenizer model '{}' is empty: {}", tok_path.string(), rerun(dir));
    }
    Tokenizer tok;
    try {
      tok = Tokenizer::load(tok_path);
    } catch (const Error& e) {
      fail("{} ({})", e.what(), rerun(dir));
    }
    info.has_tokenizer = true;
    const auto pieces = static_cast<std::uint32_t>(tok.vocab_size());
    if (info.vocab_size != 0 && pieces != info.vocab_size) {
      fail(
          "tokenizer model '{}' has {} pieces, but the shards in '{}' have vocabulary size {}: "
          "the tokenizer does not belong to this data (truncated or replaced?); {}",
          tok_path.string(), pieces, dir.string(), info.vocab_size, rerun(dir));
    }
    if (meta_names_tokenizer) {
      const json fp = meta["tokenizer"].value("fingerprint", json());
      if (fp.is_string() && fp.get<std::string>() != tok.fingerprint()) {
        fail(
            "tokenizer model '{}' has fingerprint {}, but '{}' records {}: it is not the "
            "tokenizer these shards were made with; {}",
            tok_path.string(), tok.fingerprint(), meta_path.string(), fp.get<std::string>(),
            rerun(dir));
      }
    }
    if (info.vocab_size == 0) info.vocab_size = pieces;
  }
  return info;
}

std::vector<fs::path> split_shards(const DataFolderInfo& info, const std::string& prefix) {
  auto it = info.shards.find(prefix);
  if (it == info.shards.end() || it->second.empty()) {
    fail("folder '{}' holds no '{}-*.tokens' shards: run `difftx data prepare --out {}`",
         info.dir.string(), prefix, info.dir.string());
  }
  return it->second;
}

}  // namespace difftx::data
