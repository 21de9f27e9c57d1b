#pragma once
// Transformer blocks as torch.nn.TransformerEncoderLayer / DecoderLayer
// (batch-first), with post-norm (the original paper, PyTorch's default) and
// pre-norm variants, ReLU or exact GELU, and stacks of them with a final
// LayerNorm. Parameter names follow PyTorch: self_attn.*, cross_attn.*
// (PyTorch's multihead_attn), linear1.*, linear2.*, norm1.*, norm2.*, norm3.*.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/module.h"
#include "nn/module_list.h"
#include "nn/multihead_attention.h"
#include "nn/norm.h"

namespace heed::nn {

enum class Activation { ReLU, GELU };
// "relu" or "gelu" (exact); anything else is an error naming it.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation a);
Tensor activate(const Tensor& x, Activation a);

struct FeedForwardOptions {
  int64_t d_model;
  int64_t dim_feedforward;
  Activation activation = Activation::ReLU;
  double dropout = 0;  // after the activation, in training mode
  bool bias = true;
};

// linear2(dropout(act(linear1(x)))): [.., d_model] -> [.., d_model].
class FeedForward : public Module {
 public:
  explicit FeedForward(const FeedForwardOptions& options, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  const FeedForwardOptions& options() const { return options_; }

  std::shared_ptr<Linear> linear1, linear2;

 private:
  FeedForwardOptions options_;
  Generator* gen_;
};

struct TransformerLayerOptions {
  int64_t d_model;
  int64_t nhead;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::ReLU;
  double layer_norm_eps = 1e-5;
  bool norm_first = false;   // pre-norm when true
  int64_t num_kv_heads = 0;  // grouped-query attention; 0: nhead
  bool rotary = false;       // RoPE in self-attention (not in cross-attention)
};

struct EncoderLayerCall {
  Tensor key_padding_mask;  // Bool [B, S]; true = padding
  Tensor attn_mask;         // Bool, broadcastable to [B, H, S, S]; true = masked
  bool causal = false;      // decoder-only models (GPT) use the encoder layer causally
  int64_t window = 0;
  KVCache* cache = nullptr;  // incremental decoding (causal use)
};

class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& options, Generator* gen = nullptr);
  // post-norm: x = norm1(x + SA(x)); out = norm2(x + FF(x))
  // pre-norm:  x = x + SA(norm1(x)); out = x + FF(norm2(x))
  Tensor forward(const Tensor& src, const EncoderLayerCall& call = {});
  const TransformerLayerOptions& options() const { return options_; }

  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;

 private:
  // residual + dropout(sublayer(x))
  Tensor sa_block(const Tensor& x, const EncoderLayerCall& call, const Tensor& residual);
  Tensor ff_block(const Tensor& x, const Tensor& residual);
  TransformerLayerOptions options_;
  Generator* gen_;
};

struct DecoderLayerCall {
  Tensor tgt_key_padding_mask;     // Bool [B, T] (with a cache: [B, cached + T])
  Tensor tgt_mask;                 // Bool, broadcastable to [B, H, T, T]
  bool causal = true;              // mask future target positions
  Tensor memory_key_padding_mask;  // Bool [B, S]
  Tensor memory_mask;              // Bool, broadcastable to [B, H, T, S]
  KVCache* self_cache = nullptr;   // grows by T each call
  KVCache* cross_cache = nullptr;  // filled from memory once, then reused
};

class TransformerDecoderLayer : public Module {
 public:
  explicit TransformerDecoderLayer(const TransformerLayerOptions& options, Generator* gen = nullptr);
  // post-norm: x = norm1(x + SA(x)); x = norm2(x + CA(x, memory)); out = norm3(x + FF(x))
  // pre-norm:  x = x + SA(norm1(x)); x = x + CA(norm2(x), memory); out = x + FF(norm3(x))
  // memory may be undefined when call.cross_cache already holds its projection.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const DecoderLayerCall& call = {});
  const TransformerLayerOptions& options() const { return options_; }

  std::shared_ptr<MultiheadAttention> self_attn, cross_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;

 private:
  TransformerLayerOptions options_;
  Generator* gen_;
};

// num_layers encoder layers ("layers.0" ...) and, with final_norm, a LayerNorm "norm".
class TransformerEncoder : public Module {
 public:
  TransformerEncoder(const TransformerLayerOptions& options, int64_t num_layers, bool final_norm = true,
                     Generator* gen = nullptr);
  Tensor forward(const Tensor& src, const EncoderLayerCall& call = {});

  std::shared_ptr<ModuleList<TransformerEncoderLayer>> layers;
  std::shared_ptr<LayerNorm> norm;  // null without final_norm
};

// Per-layer caches of a decoder stack for incremental decoding.
struct DecoderCache {
  std::vector<KVCache> self, cross;
  int64_t length() const { return self.empty() ? 0 : self[0].length(); }
  void clear() { self.clear(), cross.clear(); }
};

class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerLayerOptions& options, int64_t num_layers, bool final_norm = true,
                     Generator* gen = nullptr);
  // With a cache, tgt holds only the new positions; the per-layer caches in
  // call are ignored (the stack uses `cache`).
  Tensor forward(const Tensor& tgt, const Tensor& memory, const DecoderLayerCall& call = {},
                 DecoderCache* cache = nullptr);

  std::shared_ptr<ModuleList<TransformerDecoderLayer>> layers;
  std::shared_ptr<LayerNorm> norm;
};

}  // namespace heed::nn
