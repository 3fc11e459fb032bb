// Stop strings over streamed text: passes text through, holding back a tail that could be the
// start of a stop string, and cuts the output just before the first stop string found.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace difftx::serve {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);  // empty strings are ignored

  // Appends `text`; returns the text that can be emitted now. When a stop string completes,
  // returns the text before it and stopped() becomes true; later input is dropped.
  std::string push(std::string_view text);
  // At the end of the generation: the held-back tail ("" after a stop).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // received, not yet emitted
  bool stopped_ = false;
};

}  // namespace difftx::serve
