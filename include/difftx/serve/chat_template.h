// Chat template: how /v1/chat/completions turns messages into the text a base model continues.
//
// The default (docs/serve.md), for models trained on plain text:
//   <system content>\n\n            (each system message)
//   User: <content>\n               (each user message)
//   Assistant: <content>\n          (each assistant message)
//   Assistant:                      (the generation prompt; the reply continues from here)
// and generation stops at "\nUser:" (the model starting the next user turn).
// A checkpoint may carry its own as chat_template.json next to tokenizer.model, with the same
// fields as this struct (any subset; the rest keep their defaults).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/serve/request.h"

namespace difftx::serve {

struct ChatTemplate {
  std::string system_prefix;
  std::string system_suffix = "\n\n";
  std::string user_prefix = "User: ";
  std::string user_suffix = "\n";
  std::string assistant_prefix = "Assistant: ";
  std::string assistant_suffix = "\n";
  std::string generation_prompt = "Assistant:";
  std::vector<std::string> stop = {"\nUser:"};  // added to every chat request's stop strings

  // Reads the JSON fields above; throws difftx::Error naming `source` and the bad field.
  static ChatTemplate from_json(const nlohmann::json& j, const std::string& source);
  static ChatTemplate load(const std::filesystem::path& file);
  nlohmann::json to_json() const;

  std::string render(const std::vector<ChatMessage>& messages) const;
};

}  // namespace difftx::serve
