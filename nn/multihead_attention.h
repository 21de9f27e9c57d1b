#pragma once
// MultiheadAttention: torch.nn.MultiheadAttention with separate q/k/v/out
// projections (q_proj, k_proj, v_proj, out_proj; never packed), batch-first
// [B, T, D], per-head weights, grouped-query / multi-query attention through
// num_kv_heads, rotary position embeddings, a key/value cache for incremental
// decoding, and a recording switch for studying attention.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/positional.h"

namespace heed::nn {

struct MultiheadAttentionOptions {
  int64_t embed_dim;
  int64_t num_heads;
  int64_t num_kv_heads = 0;  // 0: num_heads. 1: multi-query; between: grouped-query
  int64_t kdim = 0;          // width of keys fed to k_proj; 0: embed_dim
  int64_t vdim = 0;          // width of values fed to v_proj; 0: embed_dim
  bool bias = true;
  double dropout = 0;  // on the attention weights, in training mode
  // Rotary position embedding (RoPE, rotate_half convention) of q and k.
  // Positions count from 0 at the first key; with a self-attention cache the
  // new queries and keys continue after the cached ones.
  bool rotary = false;
  double rotary_base = 10000;
};

// Keys and values already projected (and rotated), [B, Hkv, S, head_dim],
// kept between decoding steps. Self-attention appends each step's keys;
// cross-attention fills it once from the encoder memory and reuses it.
struct KVCache {
  Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  bool empty() const { return !k.defined(); }
  void clear() { k = Tensor(), v = Tensor(); }
};

// Per-call settings of MultiheadAttention::forward.
struct MultiheadAttentionCall {
  Tensor key_padding_mask;  // Bool [B, S] (S counts cached keys too); true = padding
  Tensor attn_mask;         // Bool, broadcastable to [B, H, T, S]; true = masked
  bool causal = false;      // with a cache: the new queries are the last T of S positions
  int64_t window = 0;       // sliding-window width (0: none)
  // Structure the fused kernel skips tiles by (AttentionOptions has the rules).
  std::vector<int64_t> global_positions;  // with window: Longformer's global tokens
  Tensor block_layout;                    // block-sparse layout, blocks of block_size
  int64_t block_size = 0;
  bool need_weights = false;
  KVCache* cache = nullptr;
  // Cross-attention cache: project key/value only when the cache is empty,
  // then reuse it (key and value may be undefined on later steps).
  bool static_kv = false;
  // Added to the output inside out_proj (heed::linear's fused residual):
  // output = residual + out_proj(heads). Undefined: nothing is added.
  Tensor residual;
};

class MultiheadAttention : public Module {
 public:
  explicit MultiheadAttention(const MultiheadAttentionOptions& options, Generator* gen = nullptr);

  // query [B, T, D], key [B, S, kdim], value [B, S, vdim] -> output [B, T, D]
  // and, with need_weights (or recording), weights [B, H, T, S] per head.
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const MultiheadAttentionCall& call = {});
  // Self-attention: query = key = value = x.
  AttentionOutput forward(const Tensor& x, const MultiheadAttentionCall& call = {}) {
    return forward(x, x, x, call);
  }

  // Recording for studying attention: while on, every forward keeps its
  // weights [B, H, T, S] (the weights that multiplied the values), and after
  // backward recorded_weights_grad() is the gradient of the loss with respect
  // to them. The fused path recomputes the weights from the saved
  // log-sum-exp; its gradient is assembled from the output's (see
  // nn::attention_weights_grad).
  void set_recording(bool on) { recording_ = on; }
  bool is_recording() const { return recording_; }
  const Tensor& recorded_weights() const { return recorded_.weights; }
  Tensor recorded_weights_grad() const;
  // Applied to the per-head weights [B, H, T, S] before they multiply the
  // values, in every forward (see AttentionOptions::weights_hook); an empty
  // function removes it.
  void set_weights_hook(std::function<Tensor(const Tensor&)> hook) { weights_hook_ = std::move(hook); }

  const MultiheadAttentionOptions& options() const { return options_; }
  int64_t head_dim() const { return options_.embed_dim / options_.num_heads; }
  int64_t num_kv_heads() const { return options_.num_kv_heads; }

  std::shared_ptr<Linear> q_proj, k_proj, v_proj, out_proj;

 private:
  Tensor split_heads(const Tensor& x, int64_t heads) const;  // [B, T, h*dh] -> [B, h, T, dh]

  MultiheadAttentionOptions options_;
  Generator* gen_;
  std::shared_ptr<RotaryEmbedding> rotary_;  // a function of the options: not a parameter or buffer
  bool recording_ = false;
  AttentionOutput recorded_;  // the last recorded call
  Tensor recorded_values_;    // its v [B, Hkv, S, dh]
  std::function<Tensor(const Tensor&)> weights_hook_;
};

// Studying attention without touching the model: switch recording on for
// every MultiheadAttention in a model, run forward and backward, then read
// each layer's weights [B, H, T, S] and the gradient of the loss with respect
// to them (undefined when no backward ran or nothing required grad).
struct RecordedAttention {
  std::string name;  // the module's dotted path, e.g. "decoder.layers.0.cross_attn"
  Tensor weights;
  Tensor grad;
};
// Returns how many attention modules were switched.
int64_t set_attention_recording(Module& model, bool on);
std::vector<RecordedAttention> recorded_attention(Module& model);

}  // namespace heed::nn
