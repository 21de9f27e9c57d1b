#include "nn/gpt.h"

#include "nn/dropout.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {
GPTOptions checked(GPTOptions o) {
  HEED_CHECK(o.vocab > 0 && o.block_size > 0 && o.num_layers >= 0,
             "GPT: vocab ({}) and block_size ({}) must be positive and num_layers ({}) >= 0", o.vocab, o.block_size,
             o.num_layers);
  if (o.dim_feedforward == 0) o.dim_feedforward = 4 * o.d_model;
  return o;
}
}  // namespace

GPT::GPT(const GPTOptions& options, Generator* gen) : Module("GPT"), options_(checked(options)), gen_(gen) {
  const GPTOptions& o = options_;
  TransformerLayerOptions layer{o.d_model, o.nhead, o.dim_feedforward, o.dropout, o.activation, o.layer_norm_eps,
                                /*norm_first=*/true, o.num_kv_heads, o.rotary};
  tok_embed = register_module("tok_embed", std::make_shared<Embedding>(EmbeddingOptions{o.vocab, o.d_model}, gen));
  if (!o.rotary)
    pos_embed =
        register_module("pos_embed", std::make_shared<Embedding>(EmbeddingOptions{o.block_size, o.d_model}, gen));
  blocks = register_module("blocks", std::make_shared<ModuleList<TransformerEncoderLayer>>());
  for (int64_t i = 0; i < o.num_layers; ++i) blocks->push_back(std::make_shared<TransformerEncoderLayer>(layer, gen));
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(LayerNormOptions{o.d_model, o.layer_norm_eps}));
  if (!o.tied_lm_head)
    lm_head = register_module("lm_head", std::make_shared<Linear>(LinearOptions{o.d_model, o.vocab, false}, gen));
}

Tensor GPT::forward(const Tensor& ids, GPTCache* cache) {
  HEED_CHECK(ids.defined() && ids.dim() == 2 && ids.dtype() == DType::Int64,
             "GPT: expected ids int64 [B, T], got {} {}", ids.defined() ? shape_str(ids.shape()) : "undefined",
             ids.defined() ? dtype_name(ids.dtype()) : "");
  if (cache && cache->size() != blocks->size()) {
    HEED_CHECK(cache->empty(), "GPT: the cache has {} blocks but the model {}", cache->size(), blocks->size());
    cache->resize(blocks->size());
  }
  const int64_t T = ids.size(1), offset = cache && !cache->empty() ? (*cache)[0].length() : 0;
  HEED_CHECK(offset + T <= options_.block_size,
             "GPT: {} positions ({} cached + {} new) exceed block_size {}", offset + T, offset, T,
             options_.block_size);
  Tensor x = tok_embed->forward(ids);
  if (pos_embed) {
    if (!positions_.defined() || positions_.device() != ids.device())
      positions_ = arange(options_.block_size, DType::Int64, ids.device());
    x = add(x, pos_embed->forward(narrow(positions_, 0, offset, T)));
  }
  x = dropout(x, options_.dropout, is_training(), gen_);
  for (size_t i = 0; i < blocks->size(); ++i) {
    EncoderLayerCall call;
    call.causal = true;
    if (cache) call.cache = &(*cache)[i];
    x = (*blocks)[i].forward(x, call);
  }
  x = ln_f->forward(x);
  return lm_head ? lm_head->forward(x) : matmul(x, tok_embed->weight.t());
}

}  // namespace heed::nn
