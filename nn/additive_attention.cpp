#include "nn/additive_attention.h"

#include <limits>

#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {
const AdditiveAttentionOptions& checked(const AdditiveAttentionOptions& o) {
  HEED_CHECK(o.query_dim > 0 && o.key_dim > 0 && o.attn_dim > 0,
             "AdditiveAttention: query_dim, key_dim and attn_dim must be positive, got query_dim={} key_dim={} "
             "attn_dim={}",
             o.query_dim, o.key_dim, o.attn_dim);
  return o;
}
}  // namespace

AdditiveAttention::AdditiveAttention(const AdditiveAttentionOptions& options, Generator* gen)
    : Module("AdditiveAttention"), options_(checked(options)) {
  query_proj = register_module(
      "query_proj", std::make_shared<Linear>(LinearOptions{options.query_dim, options.attn_dim, options.bias}, gen));
  key_proj = register_module(
      "key_proj", std::make_shared<Linear>(LinearOptions{options.key_dim, options.attn_dim, options.bias}, gen));
  score_proj =
      register_module("score_proj", std::make_shared<Linear>(LinearOptions{options.attn_dim, 1, options.bias}, gen));
}

AdditiveAttentionOutput AdditiveAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                                   const Tensor& key_padding_mask) const {
  HEED_CHECK(query.defined() && key.defined() && value.defined(),
             "AdditiveAttention: query, key and value must all be defined tensors");
  HEED_CHECK(query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && query.size(-1) == options_.query_dim &&
                 key.size(-1) == options_.key_dim && key.size(0) == query.size(0) && value.size(0) == query.size(0) &&
                 value.size(1) == key.size(1),
             "AdditiveAttention: expected query [B, T, {}], key [B, S, {}], value [B, S, Dv] (query_dim={}, "
             "key_dim={}), got query {}, key {}, value {}",
             options_.query_dim, options_.key_dim, options_.query_dim, options_.key_dim, shape_str(query.shape()),
             shape_str(key.shape()), shape_str(value.shape()));
  const int64_t B = key.size(0), S = key.size(1);

  Tensor q = unsqueeze(query_proj->forward(query), 2);   // [B, T, 1, A]
  Tensor k = unsqueeze(key_proj->forward(key), 1);       // [B, 1, S, A]
  Tensor hidden = tanh(add(q, k));                       // [B, T, S, A]
  Tensor scores = squeeze(score_proj->forward(hidden), -1);  // [B, T, S]

  if (key_padding_mask.defined()) {
    HEED_CHECK(key_padding_mask.dtype() == DType::Bool,
               "AdditiveAttention: key_padding_mask must be bool (true = padding), got {} of shape {}; convert it "
               "with .to(DType::Bool)",
               key_padding_mask.dtype(), shape_str(key_padding_mask.shape()));
    HEED_CHECK(key_padding_mask.shape() == Shape({B, S}),
               "AdditiveAttention: key_padding_mask must be [B, S] = [{}, {}], got {} (key shape {})", B, S,
               shape_str(key_padding_mask.shape()), shape_str(key.shape()));
    // A masked key's weight is exactly 0; a row masked throughout is all -inf,
    // which heed's softmax maps to zeros with a zero gradient.
    scores = masked_fill(scores, unsqueeze(key_padding_mask, 1), -std::numeric_limits<double>::infinity());
  }
  Tensor attn = softmax(scores, -1);  // [B, T, S]
  return {matmul(attn, value), attn};
}

}  // namespace heed::nn
