// ChoiceState: engine token events -> text deltas, stop handling and log-probability entries.
#include "difftx/serve/choice_state.h"

namespace difftx::serve {

ChoiceState::ChoiceState(const TextCodec& codec, const std::vector<std::int32_t>& prompt,
                         std::vector<std::string> stops, bool ignore_eos, bool logprobs)
    : codec_(&codec),
      detok_(codec, prompt),
      stop_(std::move(stops)),
      ignore_eos_(ignore_eos),
      want_logprobs_(logprobs) {}

void ChoiceState::finish(ChoiceDelta& delta, std::string reason) {
  if (!stop_.stopped()) {
    delta.text += stop_.push(detok_.finish());
    if (!stop_.stopped()) delta.text += stop_.finish();
  }
  if (stop_.stopped()) reason = "stop";
  text_ += delta.text;
  finished_ = true;
  finish_reason_ = reason;
  delta.finished = true;
  delta.finish_reason = std::move(reason);
}

ChoiceDelta ChoiceState::on_event(const engine::TokenEvent& event, const char* cancelled_reason) {
  ChoiceDelta delta;
  if (finished_) return delta;
  if (event.token >= 0) {
    ++tokens_;
    if (want_logprobs_) {
      LogprobEntry entry;
      entry.sampled = {codec_->token_text(event.token), codec_->token_bytes(event.token),
                       event.logprob};
      for (const auto& alt : event.top) {
        entry.top.push_back(
            {codec_->token_text(alt.token), codec_->token_bytes(alt.token), alt.logprob});
      }
      entry.text_offset = token_bytes_;
      logprobs_.push_back(entry);
      delta.logprobs.push_back(std::move(entry));
    }
    token_bytes_ += codec_->token_bytes(event.token).size();
    if (event.token == codec_->eos_id() && !ignore_eos_) {
      delta.cancel_engine = event.finish == engine::FinishReason::none;
      finish(delta, "stop");
      return delta;
    }
    delta.text = stop_.push(detok_.push(event.token));
    if (stop_.stopped()) {
      delta.cancel_engine = event.finish == engine::FinishReason::none;
      finish(delta, "stop");
      return delta;
    }
  }
  if (event.finish != engine::FinishReason::none) {
    switch (event.finish) {
      case engine::FinishReason::length:
      case engine::FinishReason::context:
        finish(delta, "length");
        break;
      case engine::FinishReason::eos:
        finish(delta, "stop");
        break;
      case engine::FinishReason::cancelled:
        finish(delta, cancelled_reason);
        break;
      case engine::FinishReason::none:
        break;
    }
    return delta;
  }
  text_ += delta.text;
  return delta;
}

}  // namespace difftx::serve
