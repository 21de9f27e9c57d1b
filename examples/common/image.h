#pragma once
// Heatmap pictures without an image library: an RGB PNG writer (stored,
// uncompressed deflate blocks: larger files, no zlib) and a colour map.
#include <cstdint>
#include <string>
#include <vector>

namespace heed::examples {

// rgb: width * height * 3 bytes, row-major from the top-left.
void write_png(const std::string& path, int64_t width, int64_t height, const std::vector<uint8_t>& rgb);

// values [rows, cols] in [0, 1] (clamped) drawn as cell x cell squares,
// white (0) to dark blue (1), with a one-pixel grey grid.
void write_heatmap_png(const std::string& path, const std::vector<float>& values, int64_t rows, int64_t cols,
                       int64_t cell = 16);

}  // namespace heed::examples
