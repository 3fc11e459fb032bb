// Chat template: JSON reading and rendering of messages into a prompt.
#include "difftx/serve/chat_template.h"

#include <fstream>

#include "difftx/core/error.h"

namespace difftx::serve {

ChatTemplate ChatTemplate::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object())
    fail("chat template '{}' must be a JSON object (fields: see docs/serve.md)", source);
  ChatTemplate t;
  const std::pair<const char*, std::string*> strings[] = {
      {"system_prefix", &t.system_prefix},
      {"system_suffix", &t.system_suffix},
      {"user_prefix", &t.user_prefix},
      {"user_suffix", &t.user_suffix},
      {"assistant_prefix", &t.assistant_prefix},
      {"assistant_suffix", &t.assistant_suffix},
      {"generation_prompt", &t.generation_prompt}};
  for (const auto& [key, value] : j.items()) {
    bool known = key == "stop";
    for (const auto& [name, target] : strings) {
      if (key != name) continue;
      if (!value.is_string()) fail("chat template '{}': '{}' must be a string", source, key);
      *target = value.get<std::string>();
      known = true;
    }
    if (!known)
      fail("chat template '{}': unknown field '{}' (docs/serve.md lists the fields)", source, key);
  }
  if (auto it = j.find("stop"); it != j.end()) {
    if (!it->is_array()) fail("chat template '{}': 'stop' must be an array of strings", source);
    t.stop.clear();
    for (const auto& s : *it) {
      if (!s.is_string() || s.get<std::string>().empty()) {
        fail("chat template '{}': 'stop' must hold non-empty strings", source);
      }
      t.stop.push_back(s.get<std::string>());
    }
  }
  return t;
}

ChatTemplate ChatTemplate::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) fail("cannot open chat template '{}'", file.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("chat template '{}' is not valid JSON: {}", file.string(), e.what());
  }
  return from_json(j, file.string());
}

nlohmann::json ChatTemplate::to_json() const {
  return {{"system_prefix", system_prefix},
          {"system_suffix", system_suffix},
          {"user_prefix", user_prefix},
          {"user_suffix", user_suffix},
          {"assistant_prefix", assistant_prefix},
          {"assistant_suffix", assistant_suffix},
          {"generation_prompt", generation_prompt},
          {"stop", stop}};
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages) const {
  std::string text;
  for (const auto& m : messages) {
    if (m.role == "system") {
      text += system_prefix + m.content + system_suffix;
    } else if (m.role == "user") {
      text += user_prefix + m.content + user_suffix;
    } else {
      text += assistant_prefix + m.content + assistant_suffix;
    }
  }
  return text + generation_prompt;
}

}  // namespace difftx::serve
