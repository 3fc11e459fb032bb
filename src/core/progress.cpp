// Progress bar / log-line output: formatting of sizes, counts, durations and the status line.
#include "difftx/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

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

double Progress::now() const { return options_.clock ? options_.clock() : steady_seconds(); }

double Progress::elapsed_seconds() const { return now() - start_; }

std::string Progress::status_line(double done, double elapsed_s, std::string_view extra,
                                  bool final) const {
  const bool bytes = options_.unit == "B";
  auto quantity = [&](double v) {
    std::string q = bytes ? format_bytes(v) : format_count(v);
    if (!bytes && !options_.unit.empty()) q.append(" ").append(options_.unit);
    return q;
  };
  const double rate = elapsed_s > 1e-9 ? done / elapsed_s : 0.0;
  std::string rate_text;
  if (elapsed_s > 1e-9 && done > 0) {
    rate_text = bytes ? format_bytes(rate) : format_count(rate);
    if (!bytes && !options_.unit.empty()) rate_text.append(" ").append(options_.unit);
    rate_text.append("/s");
  }
  const bool known = total_ > 0;
  const double fraction = known ? std::clamp(done / total_, 0.0, 1.0) : 0.0;

  std::string line = label_;
  if (final) {
    line += fmt::format(": {} in {}", quantity(done), format_duration(elapsed_s));
    if (!rate_text.empty()) line += fmt::format(" ({})", rate_text);
  } else {
    if (mode_ == ProgressMode::terminal && known) {
      const int filled = static_cast<int>(fraction * kBarWidth);
      line.append(" [");
      line.append(static_cast<std::size_t>(filled), '#');
      line.append(static_cast<std::size_t>(kBarWidth - filled), '.');
      line.append("]");
    } else {
      line += ":";
    }
    if (known) {
      line += fmt::format(" {:5.1f}% {}/{}", 100.0 * fraction, quantity(done), quantity(total_));
    } else {
      line.append(" ").append(quantity(done));
    }
    if (!rate_text.empty()) line.append("  ").append(rate_text);
    if (known) {
      const double eta = rate > 0 ? (total_ - done) / rate : -1.0;
      line.append("  ETA ").append(format_duration(eta));
    }
  }
  if (!extra.empty()) line.append("  ").append(extra);
  return line;
}

void Progress::emit(std::string_view extra, bool final) {
  const double t = now();
  std::string line = status_line(done_, t - start_, extra, final);
  if (mode_ == ProgressMode::terminal) {
    std::string padded = "\r" + line;
    if (line.size() < last_width_) padded.append(last_width_ - line.size(), ' ');
    last_width_ = line.size();
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
  const double interval = mode_ == ProgressMode::terminal ? options_.redraw_interval_s
                                                          : options_.line_interval_s;
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
