// GenerationSession: job events -> per-choice text -> SSE chunks or a response object.
#include "difftx/serve/generation_session.h"

namespace difftx::serve {

GenerationSession::GenerationSession(ResponseIdentity identity, std::shared_ptr<Job> job,
                                     const PreparedRequest& prepared, const TextCodec& codec,
                                     bool include_usage)
    : identity_(std::move(identity)),
      job_(std::move(job)),
      prompt_tokens_(prepared.prompt_tokens),
      logprobs_(prepared.logprobs),
      include_usage_(include_usage) {
  choices_.reserve(prepared.choices.size());
  for (const auto& c : prepared.choices) {
    choices_.emplace_back(codec, c.request.prompt, prepared.stop, prepared.ignore_eos,
                          prepared.logprobs);
  }
}

std::string GenerationSession::sse_head() const {
  if (identity_.endpoint != Endpoint::chat_completions) return "";
  std::string out;
  for (std::size_t i = 0; i < choices_.size(); ++i) {
    out += sse_event(
        chunk_json(identity_, static_cast<int>(i), "", nullptr, "", true, include_usage_));
  }
  return out;
}

void GenerationSession::process(std::vector<JobEvent>& events, std::string* sse) {
  const char* cancelled_reason = abort_finish_reason(job_->abort_reason());
  for (auto& e : events) {
    if (e.choice < 0 || static_cast<std::size_t>(e.choice) >= choices_.size()) continue;
    ChoiceState& choice = choices_[static_cast<std::size_t>(e.choice)];
    ChoiceDelta delta = choice.on_event(e.event, cancelled_reason);
    if (delta.cancel_engine) job_->cancel_choice(e.choice);
    if (!sse || (delta.text.empty() && delta.logprobs.empty() && !delta.finished)) continue;
    nlohmann::json lp =
        logprobs_ ? logprobs_json(identity_.endpoint, delta.logprobs) : nlohmann::json(nullptr);
    *sse += sse_event(chunk_json(identity_, e.choice, delta.text, lp, delta.finish_reason, false,
                                 include_usage_));
  }
}

void GenerationSession::take(std::chrono::milliseconds wait, std::string* sse) {
  if (done()) return;
  std::vector<JobEvent> events;
  const bool more = job_->wait(events, wait);
  process(events, sse);
  if (!more) {
    job_over_ = true;
    error_ = job_->error();
    // Defensive: a job that is over without an end event for a choice ends it as aborted.
    if (!error_) {
      for (std::size_t i = 0; i < choices_.size(); ++i) {
        if (choices_[i].finished()) continue;
        engine::TokenEvent end;
        end.finish = engine::FinishReason::cancelled;
        std::vector<JobEvent> last{JobEvent{static_cast<int>(i), end}};
        process(last, sse);
      }
    }
  }
}

std::string GenerationSession::next_sse(std::chrono::milliseconds wait) {
  std::string out;
  take(wait, &out);
  return out;
}

void GenerationSession::collect(std::chrono::milliseconds wait) {
  take(wait, nullptr);
}

bool GenerationSession::done() const {
  if (error_) return true;
  for (const auto& c : choices_) {
    if (!c.finished()) return false;
  }
  return true;
}

Usage GenerationSession::usage() const {
  Usage u;
  u.prompt_tokens = prompt_tokens_;
  for (const auto& c : choices_) u.completion_tokens += c.completion_tokens();
  return u;
}

std::string GenerationSession::sse_tail() const {
  std::string out;
  if (error_) {
    out += sse_event(error_->to_json());
  } else if (include_usage_) {
    out += sse_event(usage_chunk_json(identity_, usage()));
  }
  return out + kSseDone;
}

nlohmann::json GenerationSession::response() const {
  std::vector<ChoiceResult> results;
  for (const auto& c : choices_) {
    results.push_back({c.text(), c.finish_reason(), logprobs_, c.logprobs()});
  }
  return response_json(identity_, results, usage());
}

}  // namespace difftx::serve
