// The redrawn progress line fits the terminal: an explicit width, COLUMNS, and dropping the
// bar before cutting; the rate and ETA of a resumed job count only its own units.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "difftx/core/progress.h"

namespace difftx {
namespace {

struct Capture {
  std::FILE* file = std::tmpfile();
  double now = 10.0;
  ~Capture() { std::fclose(file); }
  ProgressOptions options(int width) {
    ProgressOptions o;
    o.mode = ProgressMode::terminal;
    o.unit = "step";
    o.out = file;
    o.width = width;
    o.redraw_interval_s = 0;
    o.clock = [this] { return now; };
    return o;
  }
  std::string text() {
    std::fflush(file);
    std::rewind(file);
    std::string s;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) s.append(buf, n);
    return s;
  }
};

// The longest of the "\r"-separated redraws, trailing padding excluded.
std::size_t longest_line(const std::string& out) {
  std::size_t longest = 0;
  std::stringstream in(out);
  std::string piece;
  while (std::getline(in, piece, '\r')) {
    while (!piece.empty() && (piece.back() == ' ' || piece.back() == '\n')) piece.pop_back();
    longest = std::max(longest, piece.size());
  }
  return longest;
}

const char* kExtra = "loss 4.1234 | lr 2.00e-03 | 6,203 tok/s | a long tail of text that goes on";

TEST(ProgressWidth, RedrawnLinesFitTheGivenWidth) {
  for (int width : {40, 60, 80, 200}) {
    Capture cap;
    {
      Progress p("train", 600, cap.options(width));
      for (int step = 1; step <= 5; ++step) {
        cap.now += 1;
        p.update(step, kExtra);
      }
      p.finish(600, "loss 3.0");
    }
    const std::string out = cap.text();
    EXPECT_LE(longest_line(out), std::size_t(width - 1)) << "width " << width << ":\n" << out;
    if (width == 200) {
      EXPECT_NE(out.find("train ["), std::string::npos) << out;  // room for the bar
    }
  }
}

TEST(ProgressWidth, TheBarGoesBeforeTheNumbers) {
  Capture cap;
  Progress p("train", 600, cap.options(70));
  cap.now += 2;
  const std::string line = p.status_line(300, 2, "loss 4.0000 | lr 2.00e-03 | 9,999 tok/s", false);
  EXPECT_LE(line.size(), 69u) << line;
  EXPECT_EQ(line.find('['), std::string::npos) << line;
  EXPECT_EQ(line.rfind("train:  50.0% 300 step/600 step", 0), 0u) << line;
}

TEST(ProgressWidth, ColumnsVariableIsTheDefaultWidth) {
  ::setenv("COLUMNS", "50", 1);
  Capture cap;
  Progress p("train", 600, cap.options(0));
  EXPECT_EQ(p.terminal_width(), 50);
  EXPECT_LE(p.status_line(10, 1, kExtra, false).size(), 49u);
  ::setenv("COLUMNS", "not a number", 1);
  EXPECT_GT(p.terminal_width(), 0);  // the terminal's width, or 80 when not a terminal
  ::unsetenv("COLUMNS");
}

TEST(ProgressWidth, ResumedJobsRateAndEtaCountOnlyTheirOwnUnits) {
  Capture cap;
  ProgressOptions o = cap.options(200);
  o.start_done = 400;
  Progress p("train", 600, o);
  // 400 steps were done by an earlier process; this one did 100 in 50 s: 2 steps/s, 100 left.
  const std::string line = p.status_line(500, 50, "", false);
  EXPECT_NE(line.find("  2 step/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:50"), std::string::npos) << line;
  EXPECT_NE(line.find("500 step/600 step"), std::string::npos) << line;
  EXPECT_NE(p.status_line(600, 100, "", true).find("train: 200 step in 1:40"), std::string::npos);
}

}  // namespace
}  // namespace difftx
