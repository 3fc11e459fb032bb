// Raster pictures for attention maps: RGB images, color maps, a dependency-free PNG encoder
// (uncompressed deflate blocks) and base64 for embedding PNGs in SVG and HTML.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace difftx::eval {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

// viridis at t in [0, 1] (clamped).
Rgb viridis_rgb(double t);
// Diverging blue - white - red at t in [-1, 1] (clamped): negative blue, 0 white, positive red.
Rgb diverging_rgb(double t);
std::string rgb_hex(Rgb c);  // "#rrggbb"

struct Image {
  int width = 0, height = 0;
  std::vector<Rgb> pixels;  // row-major, top row first
  Image(int w, int h) : width(w), height(h), pixels(std::size_t(w) * std::size_t(h)) {}
  Rgb& at(int x, int y) { return pixels[std::size_t(y) * std::size_t(width) + std::size_t(x)]; }
};

// PNG (8-bit RGB, no interlace, stored deflate blocks): bytes of a valid file.
std::string encode_png(const Image& image);
// Standard base64 with padding.
std::string base64(std::string_view bytes);

}  // namespace difftx::eval
