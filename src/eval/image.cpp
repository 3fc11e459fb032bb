// Color maps, the PNG encoder (zlib stream of stored blocks, CRC-32, Adler-32) and base64.
#include "difftx/eval/image.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "difftx/core/error.h"

namespace difftx::eval {
namespace {

// viridis at 11 evenly spaced points (matplotlib's values), linearly interpolated.
constexpr std::array<std::array<double, 3>, 11> kViridis = {{{0.267, 0.005, 0.329},
                                                             {0.283, 0.141, 0.458},
                                                             {0.254, 0.265, 0.530},
                                                             {0.207, 0.372, 0.553},
                                                             {0.164, 0.471, 0.558},
                                                             {0.128, 0.567, 0.551},
                                                             {0.135, 0.659, 0.518},
                                                             {0.267, 0.749, 0.441},
                                                             {0.478, 0.821, 0.318},
                                                             {0.741, 0.873, 0.150},
                                                             {0.993, 0.906, 0.144}}};

std::uint8_t to_byte(double x) {
  return std::uint8_t(std::lround(std::clamp(x, 0.0, 1.0) * 255.0));
}

std::uint32_t crc32(const std::string& bytes, std::size_t begin) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = begin; i < bytes.size(); ++i) {
    c = table[(c ^ static_cast<unsigned char>(bytes[i])) & 0xFFu] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

void put32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += char((v >> s) & 0xFFu);
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put32(out, std::uint32_t(data.size()));
  const std::size_t start = out.size();
  out += type;
  out += data;
  put32(out, crc32(out, start));
}

}  // namespace

Rgb viridis_rgb(double t) {
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * double(kViridis.size() - 1);
  const std::size_t i = std::min(std::size_t(t), kViridis.size() - 2);
  const double f = t - double(i);
  Rgb c;
  c.r = to_byte(kViridis[i][0] * (1 - f) + kViridis[i + 1][0] * f);
  c.g = to_byte(kViridis[i][1] * (1 - f) + kViridis[i + 1][1] * f);
  c.b = to_byte(kViridis[i][2] * (1 - f) + kViridis[i + 1][2] * f);
  return c;
}

Rgb diverging_rgb(double t) {
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, -1.0, 1.0);
  // white at 0, #b2182b (red) at +1, #2166ac (blue) at -1
  const double r1 = 0.698, g1 = 0.094, b1 = 0.169, r0 = 0.129, g0 = 0.400, b0 = 0.675;
  const double a = std::abs(t);
  const double r = t >= 0 ? 1 + (r1 - 1) * a : 1 + (r0 - 1) * a;
  const double g = t >= 0 ? 1 + (g1 - 1) * a : 1 + (g0 - 1) * a;
  const double b = t >= 0 ? 1 + (b1 - 1) * a : 1 + (b0 - 1) * a;
  return {to_byte(r), to_byte(g), to_byte(b)};
}

std::string rgb_hex(Rgb c) {
  static const char* digits = "0123456789abcdef";
  std::string s = "#";
  for (std::uint8_t v : {c.r, c.g, c.b}) {
    s += digits[v >> 4];
    s += digits[v & 15];
  }
  return s;
}

std::string encode_png(const Image& image) {
  DIFFTX_CHECK(image.width > 0 && image.height > 0, "png: empty image {}x{}", image.width,
               image.height);
  std::string raw;  // filter byte 0 then the row's RGB bytes
  raw.reserve(std::size_t(image.height) * (1 + 3 * std::size_t(image.width)));
  for (int y = 0; y < image.height; ++y) {
    raw += '\0';
    for (int x = 0; x < image.width; ++x) {
      const Rgb& c = image.pixels[std::size_t(y) * std::size_t(image.width) + std::size_t(x)];
      raw += char(c.r);
      raw += char(c.g);
      raw += char(c.b);
    }
  }
  std::string z = "\x78\x01";  // zlib header: deflate, 32K window, no dictionary
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    z += char(last ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
    z += char(n & 0xFF);
    z += char(n >> 8);
    z += char(~n & 0xFF);
    z += char((~n >> 8) & 0xFF);
    z.append(raw, pos, n);
    pos += n;
  } while (pos < raw.size());
  std::uint32_t a = 1, b = 0;  // Adler-32
  for (char ch : raw) {
    a = (a + static_cast<unsigned char>(ch)) % 65521u;
    b = (b + a) % 65521u;
  }
  put32(z, (b << 16) | a);
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, std::uint32_t(image.width));
  put32(ihdr, std::uint32_t(image.height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit, RGB, deflate, filter 0, no interlace
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  return png;
}

std::string base64(std::string_view bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t(static_cast<unsigned char>(bytes[i])) << 16) |
                            (std::uint32_t(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                            std::uint32_t(static_cast<unsigned char>(bytes[i + 2]));
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t v = std::uint32_t(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= std::uint32_t(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace difftx::eval
