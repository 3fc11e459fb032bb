// Numbers as difftx prints them to people: digits grouped in thousands with commas
// ("1,234,567"), the one helper every command, log line and report uses.
#pragma once

#include <cstdint>
#include <string>

namespace difftx {

// "0", "999", "1,000", "-1,234,567".
std::string with_thousands(std::int64_t value);

// Rounded to `decimals` decimals (0..9), the integer part grouped: "6,203", "1,234.57",
// "-0.50". Non-finite values print as "nan", "inf" or "-inf".
std::string with_thousands(double value, int decimals);

}  // namespace difftx
