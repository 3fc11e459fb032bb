// Progress output: formatting helpers, rate-limited plain lines, the redrawn terminal bar.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "difftx/core/progress.h"

namespace difftx {
namespace {

// Captures what a Progress writes, with a fake clock the test advances.
struct Capture {
  std::FILE* file = std::tmpfile();
  double now = 100.0;
  ~Capture() { std::fclose(file); }
  ProgressOptions options(ProgressMode mode, std::string unit) {
    ProgressOptions o;
    o.mode = mode;
    o.unit = std::move(unit);
    o.out = file;
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

TEST(Progress, Formatting) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(999), "999 B");
  EXPECT_EQ(format_bytes(1500), "1.5 kB");
  EXPECT_EQ(format_bytes(6.1e6), "6.1 MB");
  EXPECT_EQ(format_bytes(2e9), "2.00 GB");
  EXPECT_EQ(format_count(950), "950");
  EXPECT_EQ(format_count(12345), "12.3k");
  EXPECT_EQ(format_count(4.56e6), "4.56M");
  EXPECT_EQ(format_duration(7), "0:07");
  EXPECT_EQ(format_duration(185), "3:05");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(Progress, PlainLinesAreRateLimitedAndFinish) {
  Capture cap;
  auto opts = cap.options(ProgressMode::lines, "step");
  opts.line_interval_s = 10;
  Progress p("training", 100, opts);
  p.update(1, "loss 9.0");  // first update prints at once
  cap.now += 1;
  p.update(2, "loss 8.0");  // within 10 s: silent
  cap.now += 10;
  p.update(50, "loss 4.0");  // printed, with rate (50 steps in 11 s) and ETA
  cap.now += 11;
  p.finish(100, "loss 3.0");
  const std::string out = cap.text();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_EQ(out.find("loss 8.0"), std::string::npos) << out;
  EXPECT_NE(out.find("training:  50.0% 50 step/100 step  4.5 step/s  ETA 0:11  loss 4.0\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("training: 100 step in 0:22 (4.5 step/s)  loss 3.0\n"), std::string::npos)
      << out;
  EXPECT_EQ(out.find('\r'), std::string::npos);
}

TEST(Progress, TerminalBarRedrawsOneLine) {
  Capture cap;
  Progress p("encoding", 4e6, cap.options(ProgressMode::terminal, "B"));
  EXPECT_TRUE(p.uses_terminal());
  cap.now += 1;
  p.update(1e6);
  cap.now += 1;
  p.update(2e6);
  cap.now += 2;
  p.finish(4e6);
  const std::string out = cap.text();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\r'), 3) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(
      out.find("encoding [############............]  50.0% 2.0 MB/4.0 MB  1.0 MB/s  ETA 0:02"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("encoding: 4.0 MB in 0:04 (1.0 MB/s)"), std::string::npos) << out;
}

TEST(Progress, UnknownTotalAndQuiet) {
  Capture cap;
  {
    Progress p("reading", 0, cap.options(ProgressMode::lines, ""));
    cap.now += 2;
    p.update(3000);
    p.finish();
  }
  const std::string out = cap.text();
  EXPECT_NE(out.find("reading: 3.0k  1.5k/s\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("ETA"), std::string::npos) << out;

  Capture quiet;
  {
    Progress p("silent", 10, quiet.options(ProgressMode::quiet, ""));
    p.update(5);
    p.finish();
  }
  EXPECT_EQ(quiet.text(), "");
}

TEST(Progress, UnfinishedTerminalLineIsClosedOnDestruction) {
  Capture cap;
  {
    Progress p("job", 10, cap.options(ProgressMode::terminal, ""));
    p.update(3);
  }
  const std::string out = cap.text();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
}

}  // namespace
}  // namespace difftx
