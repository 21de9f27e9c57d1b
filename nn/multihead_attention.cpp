#include "nn/multihead_attention.h"

#include <cmath>

#include "tensor/grad_mode.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

MultiheadAttentionOptions checked(MultiheadAttentionOptions o) {
  HEED_CHECK(o.embed_dim > 0 && o.num_heads > 0,
             "MultiheadAttention: embed_dim and num_heads must be positive, got {} and {}", o.embed_dim, o.num_heads);
  HEED_CHECK(o.embed_dim % o.num_heads == 0,
             "MultiheadAttention: embed_dim ({}) must be divisible by num_heads ({})", o.embed_dim, o.num_heads);
  if (o.num_kv_heads == 0) o.num_kv_heads = o.num_heads;
  HEED_CHECK(o.num_kv_heads > 0 && o.num_heads % o.num_kv_heads == 0,
             "MultiheadAttention: num_heads ({}) must be a multiple of num_kv_heads ({})", o.num_heads,
             o.num_kv_heads);
  if (o.kdim == 0) o.kdim = o.embed_dim;
  if (o.vdim == 0) o.vdim = o.embed_dim;
  HEED_CHECK(o.kdim > 0 && o.vdim > 0, "MultiheadAttention: kdim and vdim must be positive, got {} and {}", o.kdim,
             o.vdim);
  HEED_CHECK(o.dropout >= 0 && o.dropout < 1, "MultiheadAttention: dropout must be in [0, 1), got {}", o.dropout);
  return o;
}

void fill_uniform(Tensor& p, double bound, Generator* gen) {
  NoGradGuard no_grad;
  p.copy_(uniform(p.shape(), -bound, bound, gen, p.dtype(), p.device()));
}

void check_input(const Tensor& x, const char* name, int64_t width, const char* width_name) {
  HEED_CHECK(x.defined(), "MultiheadAttention: {} is undefined", name);
  HEED_CHECK(x.dim() == 3 && x.size(2) == width,
             "MultiheadAttention: expected {} [B, L, {}] ({} {}), got shape {}", name, width, width_name, width,
             shape_str(x.shape()));
}

}  // namespace

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& options, Generator* gen)
    : Module("MultiheadAttention"), options_(checked(options)), gen_(gen) {
  const int64_t D = options_.embed_dim, kv_width = options_.num_kv_heads * head_dim();
  q_proj = register_module("q_proj", std::make_shared<Linear>(LinearOptions{D, D, options_.bias}, gen));
  k_proj = register_module("k_proj", std::make_shared<Linear>(LinearOptions{options_.kdim, kv_width, options_.bias}, gen));
  v_proj = register_module("v_proj", std::make_shared<Linear>(LinearOptions{options_.vdim, kv_width, options_.bias}, gen));
  out_proj = register_module("out_proj", std::make_shared<Linear>(LinearOptions{D, D, options_.bias}, gen));
  // PyTorch's initialisation: Xavier-uniform input projections (as one packed
  // [3D, D] matrix when q, k and v have the same shape, else one by one), zero
  // input and output biases, and out_proj with nn.Linear's default weight.
  if (options_.rotary) rotary_ = std::make_shared<RotaryEmbedding>(RotaryOptions{head_dim(), options_.rotary_base});
  const bool packed = options_.kdim == D && options_.vdim == D && kv_width == D;
  auto xavier = [](int64_t fan_in, int64_t fan_out) { return std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)); };
  const double packed_bound = xavier(D, 3 * D);
  fill_uniform(q_proj->weight, packed ? packed_bound : xavier(D, D), gen);
  fill_uniform(k_proj->weight, packed ? packed_bound : xavier(options_.kdim, kv_width), gen);
  fill_uniform(v_proj->weight, packed ? packed_bound : xavier(options_.vdim, kv_width), gen);
  if (options_.bias) {
    NoGradGuard no_grad;
    q_proj->bias.zero_();
    k_proj->bias.zero_();
    v_proj->bias.zero_();
    out_proj->bias.zero_();
  }
}

Tensor MultiheadAttention::split_heads(const Tensor& x, int64_t heads) const {
  return x.view({x.size(0), x.size(1), heads, head_dim()}).transpose(1, 2);
}

AttentionOutput MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const MultiheadAttentionCall& call) {
  const int64_t D = options_.embed_dim, H = options_.num_heads, Hkv = options_.num_kv_heads;
  check_input(query, "query", D, "embed_dim");
  const int64_t B = query.size(0), T = query.size(1);
  Tensor q = split_heads(q_proj->forward(query), H);

  Tensor k, v;
  KVCache* cache = call.cache;
  if (cache && call.static_kv && !cache->empty()) {
    HEED_CHECK(cache->k.size(0) == B, "MultiheadAttention: the cache holds batch {} but the query has batch {}",
               cache->k.size(0), B);
    k = cache->k, v = cache->v;
    if (rotary_) q = rotary_->forward(q, 0);
  } else {
    check_input(key, "key", options_.kdim, "kdim");
    check_input(value, "value", options_.vdim, "vdim");
    HEED_CHECK(key.size(0) == B && value.size(0) == B && key.size(1) == value.size(1),
               "MultiheadAttention: query {}, key {} and value {} must share the batch, and key and value the length",
               shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
    k = split_heads(k_proj->forward(key), Hkv);
    v = split_heads(v_proj->forward(value), Hkv);
    if (rotary_) {
      const int64_t offset = cache && !call.static_kv ? cache->length() : 0;
      q = rotary_->forward(q, offset);
      k = rotary_->forward(k, offset);
    }
    if (cache) {
      if (!call.static_kv && !cache->empty()) {
        HEED_CHECK(cache->k.size(0) == B, "MultiheadAttention: the cache holds batch {} but the query has batch {}",
                   cache->k.size(0), B);
        k = cat({cache->k, k}, 2);
        v = cat({cache->v, v}, 2);
      }
      cache->k = k, cache->v = v;
    }
  }

  AttentionOptions attention;
  attention.attn_mask = call.attn_mask;
  attention.key_padding_mask = call.key_padding_mask;
  attention.causal = call.causal;
  attention.window = call.window;
  attention.global_positions = call.global_positions;
  attention.block_layout = call.block_layout;
  attention.block_size = call.block_size;
  attention.need_weights = call.need_weights || recording_;
  attention.dropout_p = is_training() ? options_.dropout : 0.0;
  attention.generator = gen_;
  attention.weights_hook = weights_hook_;
  AttentionOutput heads;
  try {
    heads = scaled_dot_product_attention(q, k, v, attention);
  } catch (const Error& e) {
    HEED_FAIL("MultiheadAttention (query {}, {} keys): {}", shape_str(query.shape()), k.size(2), e.what());
  }
  if (recording_) {
    if (heads.weights.requires_grad()) heads.weights.retain_grad();
    // On the fused path the weights are recomputed beside the output, so
    // their gradient needs the output's (attention_weights_grad).
    if (heads.fused && heads.output.requires_grad()) heads.output.retain_grad();
    recorded_ = heads;
    recorded_values_ = v;
  }
  AttentionOutput result;
  result.output = out_proj->forward_add(heads.output.transpose(1, 2).reshape({B, T, D}), call.residual);
  if (call.need_weights || recording_) result.weights = heads.weights;
  return result;
}

Tensor MultiheadAttention::recorded_weights_grad() const {
  if (!recorded_.weights.defined()) return Tensor();
  return attention_weights_grad(recorded_, recorded_values_);
}

int64_t set_attention_recording(Module& model, bool on) {
  int64_t n = 0;
  for (auto& [path, m] : model.named_modules())
    if (auto* mha = dynamic_cast<MultiheadAttention*>(m)) mha->set_recording(on), ++n;
  return n;
}

std::vector<RecordedAttention> recorded_attention(Module& model) {
  std::vector<RecordedAttention> out;
  for (auto& [path, m] : model.named_modules()) {
    auto* mha = dynamic_cast<MultiheadAttention*>(m);
    if (!mha || !mha->recorded_weights().defined()) continue;
    out.push_back({path, mha->recorded_weights(), mha->recorded_weights_grad()});
  }
  return out;
}

}  // namespace heed::nn
