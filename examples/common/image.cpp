#include "examples/common/image.h"

#include <algorithm>
#include <array>
#include <fstream>

#include "tensor/error.h"

namespace heed::examples {

namespace {

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put32(png, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put32(png, crc32(body.data(), body.size()));
}

}  // namespace

void write_png(const std::string& path, int64_t width, int64_t height, const std::vector<uint8_t>& rgb) {
  HEED_CHECK(width > 0 && height > 0 && rgb.size() == static_cast<size_t>(width * height * 3),
             "write_png {}: {} bytes do not make a {}x{} RGB image", path, rgb.size(), width, height);
  // Scanlines, each led by filter byte 0.
  std::vector<uint8_t> raw;
  raw.reserve(static_cast<size_t>(height * (width * 3 + 1)));
  for (int64_t y = 0; y < height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), rgb.begin() + y * width * 3, rgb.begin() + (y + 1) * width * 3);
  }
  // zlib stream of stored blocks (at most 65535 bytes each) + Adler-32.
  std::vector<uint8_t> z{0x78, 0x01};
  for (size_t pos = 0; pos < raw.size() || pos == 0;) {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n >= raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(n & 0xFF), z.push_back(n >> 8);
    z.push_back(~n & 0xFF), z.push_back((~n >> 8) & 0xFF);
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + n);
    pos += n;
    if (last) break;
  }
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  put32(z, (b << 16) | a);

  std::vector<uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, static_cast<uint32_t>(width));
  put32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, no filter choice, no interlace
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  std::ofstream out(path, std::ios::binary);
  HEED_CHECK(out.good(), "write_png: cannot open {} for writing", path);
  out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
}

void write_heatmap_png(const std::string& path, const std::vector<float>& values, int64_t rows, int64_t cols,
                       int64_t cell) {
  HEED_CHECK(rows > 0 && cols > 0 && values.size() == static_cast<size_t>(rows * cols),
             "write_heatmap_png {}: {} values do not make a {}x{} map", path, values.size(), rows, cols);
  const int64_t W = cols * cell + 1, H = rows * cell + 1;
  std::vector<uint8_t> rgb(static_cast<size_t>(W * H * 3), 200);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = std::clamp(values[r * cols + c], 0.0f, 1.0f);
      const uint8_t colour[3] = {static_cast<uint8_t>(255 - 247 * v), static_cast<uint8_t>(255 - 207 * v),
                                 static_cast<uint8_t>(255 - 148 * v)};
      for (int64_t y = r * cell + 1; y < (r + 1) * cell; ++y)
        for (int64_t x = c * cell + 1; x < (c + 1) * cell; ++x)
          for (int k = 0; k < 3; ++k) rgb[static_cast<size_t>((y * W + x) * 3 + k)] = colour[k];
    }
  write_png(path, W, H, rgb);
}

}  // namespace heed::examples
