// Progress bar / log-line output: formatting of sizes, counts, durations and the status line.
#include "difftx/core/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace difftx {

namespace {

constexpr int kBarWidth = 24;

double steady_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

ProgressMode resolve_mode(ProgressMode mode, std::FILE* out) {
  if (out == nullptr) return ProgressMode::quiet;
  if (mode != ProgressMode::automatic) return mode;
  return ::isatty(::fileno(out)) != 0 ? ProgressMode::terminal : ProgressMode::lines;
}

// Characters (UTF-8 code points) of `text`.
std::size_t display_length(std::string_view text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// The first `columns` characters of `text` (cut between UTF-8 code points).
std::string cut_to(std::string_view text, std::size_t columns) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && chars++ == columns) {
      return std::string(text.substr(0, i));
    }
  }
  return std::string(text);
}

}  // namespace

std::string format_bytes(double bytes) {
  if (!std::isfinite(bytes)) return "? B";
  const double a = std::fabs(bytes);
  if (a < 1e3) return fmt::format("{:.0f} B", bytes);
  if (a < 1e6) return fmt::format("{:.1f} kB", bytes / 1e3);
  if (a < 1e9) return fmt::format("{:.1f} MB", bytes / 1e6);
  if (a < 1e12) return fmt::format("{:.2f} GB", bytes / 1e9);
  return fmt::format("{:.2f} TB", bytes / 1e12);
}

std::string format_count(double count) {
  if (!std::isfinite(count)) return "?";
  const double a = std::fabs(count);
  if (a < 1e3) {
    // Whole numbers as they are; fractions (rates) with one decimal below 100.
    if (a < 100 && count != std::floor(count)) return fmt::format("{:.1f}", count);
    return fmt::format("{:.0f}", count);
  }
  if (a < 1e6) return fmt::format("{:.1f}k", count / 1e3);
  if (a < 1e9) return fmt::format("{:.2f}M", count / 1e6);
  return fmt::format("{:.2f}G", count / 1e9);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto total = static_cast<long long>(std::llround(seconds));
  long long h = total / 3600, m = (total / 60) % 60, s = total % 60;
  if (h > 0) return fmt::format("{}:{:02}:{:02}", h, m, s);
  return fmt::format("{}:{:02}", m, s);
}

Progress::Progress(std::string label, double total, ProgressOptions options)
    : label_(std::move(label)), total_(total), options_(std::move(options)) {
  mode_ = resolve_mode(options_.mode, options_.out);
  start_ = now();
}

Progress::~Progress() {
  if (line_open_ && options_.out != nullptr) {
    std::fputc('\n', options_.out);
    std::fflush(options_.out);
  }
}

double Progress::now() const {
  return options_.clock ? options_.clock() : steady_seconds();
}

double Progress::elapsed_seconds() const {
  return now() - start_;
}

int Progress::terminal_width() const {
  if (options_.width > 0) return options_.width;
  if (const char* env = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long columns = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && columns > 0 && columns < 100000)
      return static_cast<int>(columns);
  }
  struct winsize size {};
  if (options_.out != nullptr && ::ioctl(::fileno(options_.out), TIOCGWINSZ, &size) == 0 &&
      size.ws_col > 0) {
    return size.ws_col;
  }
  return 80;
}

std::string Progress::status_line(double done, double elapsed_s, std::string_view extra,
                                  bool final) const {
  const bool bytes = options_.unit == "B";
  auto quantity = [&](double v) {
    std::string q = bytes ? format_bytes(v) : format_count(v);
    if (!bytes && !options_.unit.empty()) q.append(" ").append(options_.unit);
    return q;
  };
  const double done_here = done - options_.start_done;  // this job's share
  const double rate = elapsed_s > 1e-9 ? done_here / elapsed_s : 0.0;
  std::string rate_text;
  if (elapsed_s > 1e-9 && done_here > 0) {
    rate_text = bytes ? format_bytes(rate) : format_count(rate);
    if (!bytes && !options_.unit.empty()) rate_text.append(" ").append(options_.unit);
    rate_text.append("/s");
  }
  const bool known = total_ > 0;
  const double fraction = known ? std::clamp(done / total_, 0.0, 1.0) : 0.0;

  // The line without the bar; the bar goes after the label when the terminal has room.
  std::string head = label_;
  std::string body;
  if (final) {
    body += fmt::format(": {} in {}", quantity(done_here), format_duration(elapsed_s));
    if (!rate_text.empty()) body += fmt::format(" ({})", rate_text);
  } else {
    body += ":";
    if (known) {
      body += fmt::format(" {:5.1f}% {}/{}", 100.0 * fraction, quantity(done), quantity(total_));
    } else {
      body.append(" ").append(quantity(done));
    }
    if (!rate_text.empty()) body.append("  ").append(rate_text);
    if (known) {
      const double eta = rate > 0 ? (total_ - done) / rate : -1.0;
      body.append("  ETA ").append(format_duration(eta));
    }
  }
  if (!extra.empty()) body.append("  ").append(extra);
  if (mode_ != ProgressMode::terminal) return head + body;

  const std::size_t columns = static_cast<std::size_t>(std::max(terminal_width() - 1, 1));
  if (!final && known) {
    const int filled = static_cast<int>(fraction * kBarWidth);
    std::string bar = " [";
    bar.append(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(kBarWidth - filled), '.');
    bar.append("]");
    // The bar replaces the colon after the label.
    std::string with_bar = head + bar + body.substr(1);
    if (display_length(with_bar) <= columns) return with_bar;
  }
  return cut_to(head + body, columns);
}

void Progress::emit(std::string_view extra, bool final) {
  const double t = now();
  std::string line = status_line(done_, t - start_, extra, final);
  if (mode_ == ProgressMode::terminal) {
    // "\r" then the line, then clear what is left of a longer previous line.
    std::string padded = "\r" + line;
    const std::size_t length = display_length(line);
    if (length < last_width_) padded.append(last_width_ - length, ' ');
    last_width_ = length;
    if (final) padded += '\n';
    std::fputs(padded.c_str(), options_.out);
    line_open_ = !final;
  } else {
    line += '\n';
    std::fputs(line.c_str(), options_.out);
  }
  std::fflush(options_.out);
  last_output_ = t;
}

void Progress::update(double done, std::string_view extra) {
  done_ = done;
  if (finished_ || mode_ == ProgressMode::quiet) return;
  const double interval =
      mode_ == ProgressMode::terminal ? options_.redraw_interval_s : options_.line_interval_s;
  if (now() - last_output_ < interval) return;
  emit(extra, false);
}

void Progress::finish(double done, std::string_view extra) {
  done_ = done;
  finish(extra);
}

void Progress::finish(std::string_view extra) {
  if (finished_) return;
  finished_ = true;
  if (mode_ == ProgressMode::quiet) return;
  emit(extra, true);
}

}  // namespace difftx
