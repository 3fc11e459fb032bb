// with_thousands: integer and decimal grouping, signs, rounding and non-finite values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "difftx/core/number_format.h"

namespace difftx {
namespace {

TEST(WithThousands, Integers) {
  EXPECT_EQ(with_thousands(std::int64_t(0)), "0");
  EXPECT_EQ(with_thousands(std::int64_t(999)), "999");
  EXPECT_EQ(with_thousands(std::int64_t(1000)), "1,000");
  EXPECT_EQ(with_thousands(std::int64_t(123456)), "123,456");
  EXPECT_EQ(with_thousands(std::int64_t(1234567)), "1,234,567");
  EXPECT_EQ(with_thousands(std::int64_t(-1234567)), "-1,234,567");
  EXPECT_EQ(with_thousands(std::numeric_limits<std::int64_t>::min()), "-9,223,372,036,854,775,808");
  EXPECT_EQ(with_thousands(std::numeric_limits<std::int64_t>::max()), "9,223,372,036,854,775,807");
}

TEST(WithThousands, RoundedDecimals) {
  EXPECT_EQ(with_thousands(6203.4, 0), "6,203");
  EXPECT_EQ(with_thousands(6203.5, 0), "6,204");
  EXPECT_EQ(with_thousands(999.96, 1), "1,000.0");
  EXPECT_EQ(with_thousands(1234.5678, 2), "1,234.57");
  EXPECT_EQ(with_thousands(-1234.5, 1), "-1,234.5");
  EXPECT_EQ(with_thousands(-0.004, 2), "0.00");  // a rounded zero has no sign
  EXPECT_EQ(with_thousands(0.5, 3), "0.500");
  EXPECT_EQ(with_thousands(std::nan(""), 2), "nan");
  EXPECT_EQ(with_thousands(-INFINITY, 0), "-inf");
  EXPECT_EQ(with_thousands(INFINITY, 0), "inf");
}

}  // namespace
}  // namespace difftx
