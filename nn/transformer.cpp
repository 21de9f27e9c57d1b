#include "nn/transformer.h"

#include "nn/dropout.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GELU;
  HEED_FAIL("unknown activation \"{}\" (expected \"relu\" or \"gelu\")", name);
}

const char* activation_name(Activation a) { return a == Activation::ReLU ? "relu" : "gelu"; }

Tensor activate(const Tensor& x, Activation a) { return a == Activation::ReLU ? relu(x) : gelu(x); }

namespace {

TransformerLayerOptions checked(const TransformerLayerOptions& o, const char* layer) {
  HEED_CHECK(o.d_model > 0 && o.nhead > 0 && o.dim_feedforward > 0,
             "{}: d_model ({}), nhead ({}) and dim_feedforward ({}) must be positive", layer, o.d_model, o.nhead,
             o.dim_feedforward);
  HEED_CHECK(o.d_model % o.nhead == 0, "{}: d_model ({}) must be divisible by nhead ({})", layer, o.d_model, o.nhead);
  HEED_CHECK(o.dropout >= 0 && o.dropout < 1, "{}: dropout must be in [0, 1), got {}", layer, o.dropout);
  return o;
}

MultiheadAttentionOptions attention_options(const TransformerLayerOptions& o, bool self_attention) {
  MultiheadAttentionOptions m{o.d_model, o.nhead};
  m.num_kv_heads = o.num_kv_heads;
  m.dropout = o.dropout;
  m.rotary = o.rotary && self_attention;
  return m;
}

void check_width(const char* layer, const char* name, const Tensor& x, int64_t d_model) {
  HEED_CHECK(x.defined() && x.dim() == 3 && x.size(2) == d_model,
             "{}: expected {} [B, L, {}] (d_model {}), got shape {}", layer, name, d_model, d_model,
             x.defined() ? shape_str(x.shape()) : std::string("undefined"));
}

LinearActivation fused(Activation a) { return a == Activation::ReLU ? LinearActivation::ReLU : LinearActivation::GELU; }

// residual + dropout_out(linear2(dropout(act(linear1(x))))), shared by
// FeedForward (no output dropout, no residual) and the layers, which own
// linear1/linear2 directly so their names match PyTorch's. The activation is
// fused into linear1, and the residual add into linear2 whenever no dropout
// stands between them (p = 0, or evaluation).
// residual + dropout(y), or dropout(y) without a residual: the tail of a
// block whose residual add could not be fused (dropout stands before it).
Tensor dropout_then_add(const Tensor& y, double p, bool training, Generator* gen, const Tensor& residual) {
  if (training && p > 0 && p < 1) return fused_dropout(y, p, gen, residual);  // one pass for both
  Tensor dropped = dropout(y, p, training, gen);
  return residual.defined() ? add(residual, dropped) : dropped;
}

Tensor feed_forward(const Tensor& x, const Linear& linear1, const Linear& linear2, Activation act, double p,
                    bool training, Generator* gen, bool output_dropout = false, const Tensor& residual = {}) {
  Tensor h = dropout(linear1.forward(x, fused(act)), p, training, gen);
  if (!(output_dropout && p > 0 && training)) return linear2.forward_add(h, residual);
  return dropout_then_add(linear2.forward(h), p, training, gen, residual);
}

// residual + dropout(attention output): the add fused into out_proj when
// dropout is off (MultiheadAttentionCall::residual).
Tensor attention_block(MultiheadAttention& attention, const Tensor& query, const Tensor& key_value,
                       MultiheadAttentionCall call, double p, bool training, Generator* gen,
                       const Tensor& residual) {
  const bool fuse = !(p > 0 && training);
  if (fuse) call.residual = residual;
  Tensor y = attention.forward(query, key_value, key_value, call).output;
  return fuse ? y : dropout_then_add(y, p, training, gen, residual);
}

}  // namespace

// ---- FeedForward ---------------------------------------------------------------

FeedForward::FeedForward(const FeedForwardOptions& options, Generator* gen)
    : Module("FeedForward"), options_(options), gen_(gen) {
  HEED_CHECK(options.d_model > 0 && options.dim_feedforward > 0,
             "FeedForward: d_model ({}) and dim_feedforward ({}) must be positive", options.d_model,
             options.dim_feedforward);
  HEED_CHECK(options.dropout >= 0 && options.dropout < 1, "FeedForward: dropout must be in [0, 1), got {}",
             options.dropout);
  linear1 = register_module(
      "linear1", std::make_shared<Linear>(LinearOptions{options.d_model, options.dim_feedforward, options.bias}, gen));
  linear2 = register_module(
      "linear2", std::make_shared<Linear>(LinearOptions{options.dim_feedforward, options.d_model, options.bias}, gen));
}

Tensor FeedForward::forward(const Tensor& x) const {
  HEED_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == options_.d_model,
             "FeedForward: expected input [..., {}] (d_model), got shape {}", options_.d_model,
             x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  return feed_forward(x, *linear1, *linear2, options_.activation, options_.dropout, is_training(), gen_);
}

// ---- TransformerEncoderLayer ---------------------------------------------------

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& options, Generator* gen)
    : Module("TransformerEncoderLayer"), options_(checked(options, "TransformerEncoderLayer")), gen_(gen) {
  const int64_t D = options_.d_model, FF = options_.dim_feedforward;
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(attention_options(options_, true), gen));
  linear1 = register_module("linear1", std::make_shared<Linear>(LinearOptions{D, FF}, gen));
  linear2 = register_module("linear2", std::make_shared<Linear>(LinearOptions{FF, D}, gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(LayerNormOptions{D, options_.layer_norm_eps}));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(LayerNormOptions{D, options_.layer_norm_eps}));
}

Tensor TransformerEncoderLayer::sa_block(const Tensor& x, const EncoderLayerCall& call, const Tensor& residual) {
  MultiheadAttentionCall a;
  a.key_padding_mask = call.key_padding_mask;
  a.attn_mask = call.attn_mask;
  a.causal = call.causal;
  a.window = call.window;
  a.cache = call.cache;
  return attention_block(*self_attn, x, x, a, options_.dropout, is_training(), gen_, residual);
}

Tensor TransformerEncoderLayer::ff_block(const Tensor& x, const Tensor& residual) {
  return feed_forward(x, *linear1, *linear2, options_.activation, options_.dropout, is_training(), gen_, true,
                      residual);
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const EncoderLayerCall& call) {
  check_width("TransformerEncoderLayer", "src", src, options_.d_model);
  Tensor x = src;
  if (options_.norm_first) {
    x = sa_block(norm1->forward(x), call, x);
    return ff_block(norm2->forward(x), x);
  }
  x = norm1->forward(sa_block(x, call, x));
  return norm2->forward(ff_block(x, x));
}

// ---- TransformerDecoderLayer ---------------------------------------------------

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerOptions& options, Generator* gen)
    : Module("TransformerDecoderLayer"), options_(checked(options, "TransformerDecoderLayer")), gen_(gen) {
  const int64_t D = options_.d_model, FF = options_.dim_feedforward;
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(attention_options(options_, true), gen));
  cross_attn = register_module("cross_attn", std::make_shared<MultiheadAttention>(attention_options(options_, false), gen));
  linear1 = register_module("linear1", std::make_shared<Linear>(LinearOptions{D, FF}, gen));
  linear2 = register_module("linear2", std::make_shared<Linear>(LinearOptions{FF, D}, gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(LayerNormOptions{D, options_.layer_norm_eps}));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(LayerNormOptions{D, options_.layer_norm_eps}));
  norm3 = register_module("norm3", std::make_shared<LayerNorm>(LayerNormOptions{D, options_.layer_norm_eps}));
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory, const DecoderLayerCall& call) {
  const int64_t D = options_.d_model;
  check_width("TransformerDecoderLayer", "tgt", tgt, D);
  const bool cached_memory = call.cross_cache && !call.cross_cache->empty();
  if (!cached_memory) check_width("TransformerDecoderLayer", "memory", memory, D);
  const double p = options_.dropout;
  const bool training = is_training();

  // Each returns residual + dropout(sublayer(h)).
  auto sa = [&](const Tensor& h, const Tensor& residual) {
    MultiheadAttentionCall a;
    a.key_padding_mask = call.tgt_key_padding_mask;
    a.attn_mask = call.tgt_mask;
    a.causal = call.causal;
    a.cache = call.self_cache;
    return attention_block(*self_attn, h, h, a, p, training, gen_, residual);
  };
  auto ca = [&](const Tensor& h, const Tensor& residual) {
    MultiheadAttentionCall a;
    a.key_padding_mask = call.memory_key_padding_mask;
    a.attn_mask = call.memory_mask;
    a.cache = call.cross_cache;
    a.static_kv = true;
    return attention_block(*cross_attn, h, memory, a, p, training, gen_, residual);  // memory: undefined when cached
  };
  auto ff = [&](const Tensor& h, const Tensor& residual) {
    return feed_forward(h, *linear1, *linear2, options_.activation, p, training, gen_, true, residual);
  };

  Tensor x = tgt;
  if (options_.norm_first) {
    x = sa(norm1->forward(x), x);
    x = ca(norm2->forward(x), x);
    return ff(norm3->forward(x), x);
  }
  x = norm1->forward(sa(x, x));
  x = norm2->forward(ca(x, x));
  return norm3->forward(ff(x, x));
}

// ---- stacks --------------------------------------------------------------------

namespace {
// A stack's layers, made in order (each draws its parameters from gen in turn).
template <class Layer>
std::shared_ptr<ModuleList<Layer>> layer_stack(const char* stack, const TransformerLayerOptions& options,
                                               int64_t num_layers, Generator* gen) {
  HEED_CHECK(num_layers >= 0, "{}: num_layers must be >= 0, got {}", stack, num_layers);
  auto layers = std::make_shared<ModuleList<Layer>>();
  for (int64_t i = 0; i < num_layers; ++i) layers->push_back(std::make_shared<Layer>(options, gen));
  return layers;
}

// A stack's final LayerNorm.
std::shared_ptr<LayerNorm> final_layer_norm(const TransformerLayerOptions& options) {
  return std::make_shared<LayerNorm>(LayerNormOptions{options.d_model, options.layer_norm_eps});
}
}  // namespace

TransformerEncoder::TransformerEncoder(const TransformerLayerOptions& options, int64_t num_layers, bool final_norm,
                                       Generator* gen)
    : Module("TransformerEncoder") {
  layers = register_module("layers", layer_stack<TransformerEncoderLayer>("TransformerEncoder", options, num_layers, gen));
  if (final_norm) norm = register_module("norm", final_layer_norm(options));
}

Tensor TransformerEncoder::forward(const Tensor& src, const EncoderLayerCall& call) {
  Tensor x = src;
  for (const auto& layer : *layers) x = layer->forward(x, call);
  return norm ? norm->forward(x) : x;
}

TransformerDecoder::TransformerDecoder(const TransformerLayerOptions& options, int64_t num_layers, bool final_norm,
                                       Generator* gen)
    : Module("TransformerDecoder") {
  layers = register_module("layers", layer_stack<TransformerDecoderLayer>("TransformerDecoder", options, num_layers, gen));
  if (final_norm) norm = register_module("norm", final_layer_norm(options));
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const DecoderLayerCall& call,
                                   DecoderCache* cache) {
  if (cache && cache->self.size() != layers->size()) {
    HEED_CHECK(cache->self.empty(), "TransformerDecoder: the cache has {} layers but the decoder {}",
               cache->self.size(), layers->size());
    cache->self.resize(layers->size());
    cache->cross.resize(layers->size());
  }
  Tensor x = tgt;
  for (size_t i = 0; i < layers->size(); ++i) {
    DecoderLayerCall c = call;
    if (cache) c.self_cache = &cache->self[i], c.cross_cache = &cache->cross[i];
    x = (*layers)[i].forward(x, memory, c);
  }
  return norm ? norm->forward(x) : x;
}

}  // namespace heed::nn
