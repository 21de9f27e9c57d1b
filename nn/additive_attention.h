#pragma once
// Additive (Bahdanau) attention, as in "Neural Machine Translation by Jointly
// Learning to Align and Translate": a small MLP scores every (query, key)
// pair,
//   score[b, t, s] = v . tanh(W_q query[b, t] + W_k key[b, s])
// masked keys get -inf, attn = softmax over s, context = attn @ value.
// The formula and parameter names are those of shared/reference/README.md
// (section additive_attention).
//
// Shapes: B batch, T queries, S keys, Dq / Dk / Dv query, key and value
// widths, A the attention (hidden) width.
#include <cstdint>
#include <memory>

#include "nn/linear.h"
#include "nn/module.h"

namespace heed::nn {

struct AdditiveAttentionOptions {
  int64_t query_dim;  // Dq
  int64_t key_dim;    // Dk
  int64_t attn_dim;   // A
  bool bias = false;  // biases in all three projections (the score bias cannot change attn)
};

struct AdditiveAttentionOutput {
  Tensor context;  // [B, T, Dv]
  Tensor attn;     // [B, T, S]; each row sums to 1, or is all zeros when every key is masked
};

class AdditiveAttention : public Module {
 public:
  // The projections take PyTorch's Linear init, drawn from `gen` (default:
  // heed::default_generator()) in the order query_proj, key_proj, score_proj.
  explicit AdditiveAttention(const AdditiveAttentionOptions& options, Generator* gen = nullptr);

  // query [B, T, Dq], key [B, S, Dk], value [B, S, Dv]; key_padding_mask
  // bool [B, S], true = padding (that key gets weight 0), or undefined for
  // none. A query whose keys are all masked gets all-zero weights, a zero
  // context and zero gradients, never NaN.
  // Memory: the hidden activations are [B, T, S, A], the price of scoring
  // every pair with an MLP.
  AdditiveAttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                  const Tensor& key_padding_mask = {}) const;

  const AdditiveAttentionOptions& options() const { return options_; }

 private:
  AdditiveAttentionOptions options_;

 public:
  std::shared_ptr<Linear> query_proj;  // weight [A, Dq]
  std::shared_ptr<Linear> key_proj;    // weight [A, Dk]
  std::shared_ptr<Linear> score_proj;  // weight [1, A]
};

}  // namespace heed::nn
