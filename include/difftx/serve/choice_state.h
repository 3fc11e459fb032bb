// The text side of one choice while it streams: token events from the engine -> text deltas
// (incremental detokenisation, stop strings, end-of-text), log-probability entries, the token
// count and the finish reason. Owned by the HTTP thread that answers the request.
#pragma once

#include <string>
#include <vector>

#include "difftx/engine/engine.h"
#include "difftx/serve/detokenizer.h"
#include "difftx/serve/stop_matcher.h"
#include "difftx/serve/text_codec.h"

namespace difftx::serve {

struct LogprobAlternative {
  std::string token;  // TextCodec::token_text
  std::string bytes;  // TextCodec::token_bytes
  float logprob = 0;
};

struct LogprobEntry {
  LogprobAlternative sampled;
  std::vector<LogprobAlternative> top;  // most likely first
  std::size_t text_offset = 0;          // bytes of completion text before this token
};

struct ChoiceDelta {
  std::string text;                    // newly emitted text
  std::vector<LogprobEntry> logprobs;  // entries of the tokens of this event (logprobs on)
  bool finished = false;               // this event ended the choice
  std::string finish_reason;           // "stop", "length", "timeout" or "abort" when finished
  bool cancel_engine = false;          // ended here (stop string, end-of-text) while still running
};

class ChoiceState {
 public:
  // `prompt`: the ids fed to the model (decoding context). `stops`: stop strings.
  ChoiceState(const TextCodec& codec, const std::vector<std::int32_t>& prompt,
              std::vector<std::string> stops, bool ignore_eos, bool logprobs);

  // `cancelled_reason`: the finish reason reported when the engine says the sequence was
  // cancelled ("timeout" or "abort"). Events after the end are ignored (empty delta).
  ChoiceDelta on_event(const engine::TokenEvent& event, const char* cancelled_reason);

  bool finished() const { return finished_; }
  int completion_tokens() const { return tokens_; }
  const std::string& text() const { return text_; }
  const std::vector<LogprobEntry>& logprobs() const { return logprobs_; }
  const std::string& finish_reason() const { return finish_reason_; }

 private:
  void finish(ChoiceDelta& delta, std::string reason);

  const TextCodec* codec_;
  IncrementalDetokenizer detok_;
  StopMatcher stop_;
  bool ignore_eos_;
  bool want_logprobs_;
  bool finished_ = false;
  int tokens_ = 0;
  std::size_t token_bytes_ = 0;  // sum of token_bytes of the tokens so far (text offsets)
  std::string text_;             // all text emitted
  std::vector<LogprobEntry> logprobs_;
  std::string finish_reason_;
};

}  // namespace difftx::serve
