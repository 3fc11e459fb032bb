// Progress reporting for long jobs: a redrawn bar with rate and ETA on a terminal, occasional
// plain log lines elsewhere (CI logs, files), nothing in quiet mode.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace difftx {

enum class ProgressMode {
  automatic,  // terminal bar if `out` is a TTY, otherwise plain lines
  terminal,   // one line redrawn in place ("\r"), at most every redraw_interval_s
  lines,      // a plain line at most every line_interval_s, plus one at the end
  quiet,      // no output at all
};

struct ProgressOptions {
  // Unit of `total` and `done`: "B" prints sizes (kB, MB, GB) and rates in MB/s; any other
  // text (e.g. "tok", "step") prints counts with k/M/G suffixes followed by the unit.
  std::string unit;
  ProgressMode mode = ProgressMode::automatic;
  std::FILE* out = stderr;
  double redraw_interval_s = 0.1;
  double line_interval_s = 10.0;
  // Seconds since an arbitrary origin; defaults to a steady clock. Tests inject a fake one.
  std::function<double()> clock;
  // Columns a terminal line may use; 0: the COLUMNS environment variable if it holds a
  // positive number, else the width of `out`'s terminal (ioctl TIOCGWINSZ), else 80. A redrawn
  // line is kept to width - 1 characters (the bar is dropped first, then the end is cut), so
  // it never wraps and scrolls.
  int width = 0;
  // Units already done before this job started (e.g. the steps of a resumed training run):
  // `done` stays absolute, but the rate, the ETA and the final count use only done - start_done.
  double start_done = 0;
};

class Progress {
 public:
  // `total` <= 0 means unknown: no percentage, bar or ETA, only the count and the rate.
  Progress(std::string label, double total, ProgressOptions options = {});
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Ends an unfinished terminal line with a newline so later output starts on a fresh line.
  ~Progress();

  // Reports that `done` units are complete (absolute, not an increment). `extra` is appended
  // to the line (e.g. "loss 3.21"). Cheap when called often: output is rate-limited.
  void update(double done, std::string_view extra = {});
  // Prints the final line (always, except in quiet mode) with the elapsed time and average rate.
  void finish(std::string_view extra = {});
  // Same, after setting done (without printing an update line first).
  void finish(double done, std::string_view extra = {});

  double elapsed_seconds() const;
  double total() const { return total_; }
  double done() const { return done_; }
  bool uses_terminal() const { return mode_ == ProgressMode::terminal; }

  // The text of one status line for the given state (no "\r", no newline); exposed for tests.
  // In terminal mode it is fitted to terminal_width() - 1 characters.
  std::string status_line(double done, double elapsed_s, std::string_view extra, bool final) const;
  // The width used for terminal lines (see ProgressOptions::width), looked up on each call.
  int terminal_width() const;

 private:
  double now() const;
  void emit(std::string_view extra, bool final);

  std::string label_;
  double total_;
  ProgressOptions options_;
  ProgressMode mode_;
  double start_ = 0;
  double last_output_ = -1e300;
  double done_ = 0;
  bool finished_ = false;
  bool line_open_ = false;
  std::size_t last_width_ = 0;
};

// "1.5 kB", "12.3 MB", "2.00 GB" (decimal units); "0 B" for zero.
std::string format_bytes(double bytes);
// "950", "4.5" (fractions below 100 keep one decimal), "12.3k", "4.56M", "1.20G".
std::string format_count(double count);
// "0:07", "3:05", "1:02:03"; "--:--" for a negative or non-finite value.
std::string format_duration(double seconds);

}  // namespace difftx
