#pragma once
// Position information for attention models: the sinusoidal table of
// "Attention Is All You Need", a learned position table (GPT-2 style), and
// rotary embeddings (RoPE) in the rotate_half convention of GPT-NeoX and
// Hugging Face Llama. The formulas are those of shared/reference/README.md
// (sections sinusoidal_pe and rope).
//
// Shapes: B batch, T positions, D model width, H heads, d head width.
#include <cstdint>
#include <mutex>

#include "nn/module.h"

namespace heed::nn {

// ---- sinusoidal ---------------------------------------------------------------

// The table pe [max_len, d_model], interleaved (sine in even columns, cosine
// in odd ones, not two halves):
//   pe[p, 2i]     = sin(p / base^(2i / d_model))
//   pe[p, 2i + 1] = cos(p / base^(2i / d_model))
// computed in double and then cast to `dtype` (a float type). d_model must be
// even.
Tensor sinusoidal_table(int64_t max_len, int64_t d_model, double base = 10000, DType dtype = DType::Float32);

struct SinusoidalPEOptions {
  int64_t d_model;
  int64_t max_len = 5000;
  double base = 10000;
};

// Adds the sinusoidal table to its input. It has no parameters and no
// buffers: the table is a deterministic function of the options, so a
// checkpoint need not store it. Module::to() therefore does not move it;
// instead forward() uses a copy in the input's dtype and device, made on first
// use and kept (a float64 copy is recomputed in double, not widened from
// float32).
class SinusoidalPositionalEncoding : public Module {
 public:
  explicit SinusoidalPositionalEncoding(const SinusoidalPEOptions& options);

  // x [B, T, D] (any number of leading dims) -> x + pe[offset : offset + T].
  // `offset` is the position of x's first row (a decoding step's position).
  Tensor forward(const Tensor& x, int64_t offset = 0) const;

  // The whole table [max_len, d_model], float32 on the CPU.
  Tensor table() const { return table_; }
  const SinusoidalPEOptions& options() const { return options_; }

 private:
  // The table in x's dtype and device (the float32 CPU one when it matches).
  Tensor table_like(const Tensor& x) const;

  SinusoidalPEOptions options_;
  Tensor table_;  // [max_len, d_model] float32, CPU
  mutable std::mutex cache_mutex_;
  mutable Tensor cached_;  // table_ in the dtype/device of the latest input
};

// ---- learned ------------------------------------------------------------------

struct LearnedPEOptions {
  int64_t max_len;
  int64_t d_model;
};

// A trained position table: x + weight[offset : offset + T]. Rows the input
// does not reach get a zero gradient.
class LearnedPositionalEmbedding : public Module {
 public:
  // weight ~ N(0, 1), as torch.nn.Embedding, from `gen` (default:
  // heed::default_generator()).
  explicit LearnedPositionalEmbedding(const LearnedPEOptions& options, Generator* gen = nullptr);

  // x [B, T, D] (any number of leading dims) -> x + weight[offset : offset + T].
  Tensor forward(const Tensor& x, int64_t offset = 0) const;
  const LearnedPEOptions& options() const { return options_; }

 private:
  LearnedPEOptions options_;  // before weight: initialised first, so checked before weight is drawn

 public:
  Tensor& weight;  // [max_len, d_model]
};

// ---- rotary (RoPE) ------------------------------------------------------------

// Rotates feature pairs (j, j + d/2) of every row by angle p * base^(-2j/d),
// where p = position_offset + t is the position of row t:
//   out = x * cos + rotate_half(x) * sin,  rotate_half(x) = cat(-x[d/2:], x[:d/2])
// with cos/sin tables [T, d] = cat(cos(angles), cos(angles)) (likewise sin),
// computed in double and cast to x's dtype. This is the GPT-NeoX / Llama
// pairing, not RoFormer's interleaved (2j, 2j + 1). Differentiable in x.
// x is [B, H, T, d]; any number of leading dims works (T is dim -2).
Tensor apply_rotary(const Tensor& x, int64_t position_offset = 0, double base = 10000);

struct RotaryOptions {
  int64_t head_dim;
  double base = 10000;
};

// apply_rotary with the cos/sin tables kept between calls: they are made for
// the positions a call needs, in its input's dtype and device, and regrown
// (to at least twice their length) when a later call reaches past them.
// forward() is safe to call from several threads.
class RotaryEmbedding : public Module {
 public:
  explicit RotaryEmbedding(const RotaryOptions& options);

  // x [B, H, T, head_dim] -> the same shape, rows at positions
  // position_offset .. position_offset + T - 1.
  Tensor forward(const Tensor& x, int64_t position_offset = 0) const;
  const RotaryOptions& options() const { return options_; }

 private:
  RotaryOptions options_;
  mutable std::mutex cache_mutex_;
  mutable Tensor cos_, sin_;  // [cached length, head_dim], positions 0.. in one dtype/device
};

}  // namespace heed::nn
