// One generation request on the HTTP side: consumes its job's token events through a
// ChoiceState per choice and renders them as server-sent events (streaming) or as one response
// object, with usage. Cancels choices that end on this side (stop strings, end-of-text).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "difftx/serve/choice_state.h"
#include "difftx/serve/job.h"
#include "difftx/serve/openai_format.h"
#include "difftx/serve/prepare.h"

namespace difftx::serve {

class GenerationSession {
 public:
  GenerationSession(ResponseIdentity identity, std::shared_ptr<Job> job,
                    const PreparedRequest& prepared, const TextCodec& codec, bool include_usage);

  Job& job() { return *job_; }

  // Streaming. The opening events (chat: each choice's role delta); then, per call, the events
  // for what arrived within `wait` (possibly ""); then the tail: an error event if the job
  // failed, the usage chunk (include_usage) and "data: [DONE]".
  std::string sse_head() const;
  std::string next_sse(std::chrono::milliseconds wait);
  std::string sse_tail() const;

  // Non-streamed: takes what arrived within `wait`.
  void collect(std::chrono::milliseconds wait);
  nlohmann::json response() const;

  // Every choice has finished, or the job failed.
  bool done() const;
  std::optional<ApiError> error() const { return error_; }
  Usage usage() const;

 private:
  // Applies events; appends SSE chunks to `sse` when given.
  void process(std::vector<JobEvent>& events, std::string* sse);
  void take(std::chrono::milliseconds wait, std::string* sse);

  ResponseIdentity identity_;
  std::shared_ptr<Job> job_;
  std::vector<ChoiceState> choices_;
  int prompt_tokens_ = 0;
  bool logprobs_ = false;
  bool include_usage_ = false;
  bool job_over_ = false;
  std::optional<ApiError> error_;
};

}  // namespace difftx::serve
