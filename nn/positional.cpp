#include "nn/positional.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tensor/grad_mode.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// A float32 or float64 tensor of `values` [rows, cols] in `dtype` on `device`.
Tensor table_from(const std::vector<double>& values, int64_t rows, int64_t cols, DType dtype, Device device) {
  Tensor t = from_vector<double>(values, {rows, cols});
  if (dtype != DType::Float64) t = to_dtype(t, dtype);
  if (device != kCPU) t = to_device(t, device);
  return t;
}

// The position-wise check every forward here makes: x [..., T, D] with the
// expected width D, and positions offset .. offset + T - 1 within max_len
// (max_len < 0: unbounded).
void check_positions(const char* layer, const Tensor& x, int64_t width, const char* width_name, int64_t offset,
                     int64_t max_len) {
  HEED_CHECK(x.defined(), "{}: the input is an undefined tensor", layer);
  HEED_CHECK(x.is_floating_point(), "{}: the input must be a float dtype (float32, float64 or bfloat16), got {} (shape {})", layer, x.dtype(),
             shape_str(x.shape()));
  HEED_CHECK(x.dim() >= 2 && x.size(-1) == width,
             "{}: expected input [..., T, {}] (last dimension {} = {}), got shape {}", layer, width, width_name, width,
             shape_str(x.shape()));
  HEED_CHECK(offset >= 0, "{}: the position offset must be >= 0, got {}", layer, offset);
  const int64_t T = x.size(-2);
  HEED_CHECK(max_len < 0 || offset + T <= max_len,
             "{}: positions {} .. {} (offset {} + length {}) do not fit max_len {} (input shape {})", layer, offset,
             offset + T - 1, offset, T, max_len, shape_str(x.shape()));
}

void check_head_dim(const char* where, int64_t head_dim) {
  HEED_CHECK(head_dim > 0 && head_dim % 2 == 0,
             "{}: head_dim must be even and positive (features j and j + head_dim/2 form a pair), got {}", where,
             head_dim);
}

// cos and sin tables [length, d] for positions begin .. begin + length - 1,
// each cat(f(angles), f(angles)) over the feature axis; computed in double.
std::pair<Tensor, Tensor> rotary_tables(int64_t begin, int64_t length, int64_t d, double base, DType dtype,
                                        Device device) {
  const int64_t half = d / 2;
  std::vector<double> inv_freq(half);
  for (int64_t j = 0; j < half; ++j)
    inv_freq[j] = std::pow(base, -2.0 * static_cast<double>(j) / static_cast<double>(d));
  std::vector<double> c(length * d), s(length * d);
  for (int64_t t = 0; t < length; ++t) {
    const double p = static_cast<double>(begin + t);
    for (int64_t j = 0; j < half; ++j) {
      const double angle = p * inv_freq[j];
      c[t * d + j] = c[t * d + j + half] = std::cos(angle);
      s[t * d + j] = s[t * d + j + half] = std::sin(angle);
    }
  }
  return {table_from(c, length, d, dtype, device), table_from(s, length, d, dtype, device)};
}

// cat(-x[..., d/2:], x[..., :d/2]).
Tensor rotate_half(const Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return cat({neg(narrow(x, -1, half, half)), narrow(x, -1, 0, half)}, -1);
}

// x * cos + rotate_half(x) * sin, with cos/sin [T, d] broadcast over the
// leading dims.
Tensor rotate(const Tensor& x, const Tensor& cos_t, const Tensor& sin_t) {
  return add(mul(x, cos_t), mul(rotate_half(x), sin_t));
}

}  // namespace

// ---- sinusoidal ---------------------------------------------------------------

Tensor sinusoidal_table(int64_t max_len, int64_t d_model, double base, DType dtype) {
  HEED_CHECK(max_len > 0, "sinusoidal_table: max_len must be positive, got {}", max_len);
  HEED_CHECK(d_model > 0 && d_model % 2 == 0,
             "sinusoidal_table: d_model must be even and positive (columns 2i and 2i+1 share a frequency), got {}",
             d_model);
  HEED_CHECK(base > 0, "sinusoidal_table: base must be positive, got {}", base);
  HEED_CHECK(is_floating(dtype), "sinusoidal_table: dtype must be a float dtype (float32, float64 or bfloat16), got {}", dtype);
  std::vector<double> pe(max_len * d_model);
  for (int64_t i = 0; 2 * i < d_model; ++i) {
    // p / base^(2i/d), written as the formula is (a division, not a
    // multiplication by the reciprocal), so the double values are the
    // formula's to the last bit.
    const double denom = std::pow(base, 2.0 * static_cast<double>(i) / static_cast<double>(d_model));
    for (int64_t p = 0; p < max_len; ++p) {
      const double angle = static_cast<double>(p) / denom;
      pe[p * d_model + 2 * i] = std::sin(angle);
      pe[p * d_model + 2 * i + 1] = std::cos(angle);
    }
  }
  return table_from(pe, max_len, d_model, dtype, kCPU);
}

SinusoidalPositionalEncoding::SinusoidalPositionalEncoding(const SinusoidalPEOptions& options)
    : Module("SinusoidalPositionalEncoding"), options_(options) {
  HEED_CHECK(options.d_model > 0 && options.d_model % 2 == 0,
             "SinusoidalPositionalEncoding: d_model must be even and positive, got {}", options.d_model);
  HEED_CHECK(options.max_len > 0, "SinusoidalPositionalEncoding: max_len must be positive, got {}", options.max_len);
  table_ = sinusoidal_table(options.max_len, options.d_model, options.base, DType::Float32);
}

Tensor SinusoidalPositionalEncoding::table_like(const Tensor& x) const {
  if (x.dtype() == table_.dtype() && x.device() == table_.device()) return table_;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (!cached_.defined() || cached_.dtype() != x.dtype() || cached_.device() != x.device()) {
    NoGradGuard no_grad;
    cached_ = to_device(sinusoidal_table(options_.max_len, options_.d_model, options_.base, x.dtype()), x.device());
  }
  return cached_;
}

Tensor SinusoidalPositionalEncoding::forward(const Tensor& x, int64_t offset) const {
  check_positions("SinusoidalPositionalEncoding", x, options_.d_model, "d_model", offset, options_.max_len);
  return add(x, narrow(table_like(x), 0, offset, x.size(-2)));
}

// ---- learned ------------------------------------------------------------------

namespace {
const LearnedPEOptions& checked(const LearnedPEOptions& o) {
  HEED_CHECK(o.max_len > 0 && o.d_model > 0,
             "LearnedPositionalEmbedding: max_len and d_model must be positive, got max_len={} d_model={}", o.max_len,
             o.d_model);
  return o;
}
}  // namespace

LearnedPositionalEmbedding::LearnedPositionalEmbedding(const LearnedPEOptions& options, Generator* gen)
    : Module("LearnedPositionalEmbedding"),
      options_(checked(options)),
      weight(register_parameter("weight", normal({options.max_len, options.d_model}, 0.0, 1.0, gen))) {}

Tensor LearnedPositionalEmbedding::forward(const Tensor& x, int64_t offset) const {
  check_positions("LearnedPositionalEmbedding", x, options_.d_model, "d_model", offset, options_.max_len);
  return add(x, narrow(weight, 0, offset, x.size(-2)));
}

// ---- rotary -------------------------------------------------------------------

Tensor apply_rotary(const Tensor& x, int64_t position_offset, double base) {
  HEED_CHECK(x.defined() && x.dim() >= 2, "apply_rotary: expected input [B, H, T, d], got {}",
             x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  const int64_t d = x.size(-1);
  check_head_dim("apply_rotary", d);
  HEED_CHECK(base > 0, "apply_rotary: base must be positive, got {}", base);
  check_positions("apply_rotary", x, d, "head_dim", position_offset, -1);
  auto [cos_t, sin_t] = rotary_tables(position_offset, x.size(-2), d, base, x.dtype(), x.device());
  return rotate(x, cos_t, sin_t);
}

RotaryEmbedding::RotaryEmbedding(const RotaryOptions& options) : Module("RotaryEmbedding"), options_(options) {
  check_head_dim("RotaryEmbedding", options.head_dim);
  HEED_CHECK(options.base > 0, "RotaryEmbedding: base must be positive, got {}", options.base);
}

Tensor RotaryEmbedding::forward(const Tensor& x, int64_t position_offset) const {
  check_positions("RotaryEmbedding", x, options_.head_dim, "head_dim", position_offset, -1);
  const int64_t T = x.size(-2), needed = position_offset + T;
  Tensor cos_t, sin_t;
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const bool usable = cos_.defined() && cos_.dtype() == x.dtype() && cos_.device() == x.device();
    if (!usable || cos_.size(0) < needed) {
      // Grow geometrically so that decoding one position at a time rebuilds
      // the tables O(log T) times, not T times.
      int64_t length = usable ? std::max(needed, 2 * cos_.size(0)) : needed;
      NoGradGuard no_grad;
      std::tie(cos_, sin_) = rotary_tables(0, length, options_.head_dim, options_.base, x.dtype(), x.device());
    }
    cos_t = narrow(cos_, 0, position_offset, T);
    sin_t = narrow(sin_, 0, position_offset, T);
  }
  return rotate(x, cos_t, sin_t);
}

}  // namespace heed::nn
