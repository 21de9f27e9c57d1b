// Reference ops of attention: sdpa, mha, rope, sinusoidal_pe, additive_attention.
#include "nn/layers.h"
#include "tests/reference/case.h"

namespace heed::reference {
namespace {

// q [B, Hq, T, d], k/v [B, Hkv, S, *]: causal, sliding window, key padding.
void sdpa(RefCase& c) {
  nn::AttentionOptions o;
  o.causal = c.attr_bool("causal");
  o.window = c.attr_int("window");
  o.scale = c.attr_double("scale");
  o.need_weights = true;
  if (c.attr_bool("key_padding")) o.key_padding_mask = c.input("key_padding_mask");
  auto r = nn::scaled_dot_product_attention(c.input("q"), c.input("k"), c.input("v"), o);
  c.out("out", r.output);
  c.out("attn", r.weights);
}
HEED_REFERENCE_OP("sdpa", sdpa);

// nn.MultiheadAttention with split projections; self-attention reads x as
// query, key and value at once.
void mha(RefCase& c) {
  nn::MultiheadAttentionOptions o{c.attr_int("embed_dim"), c.attr_int("num_heads")};
  o.bias = c.attr_bool("bias");
  nn::MultiheadAttention attn(o);
  c.load_params(attn);
  nn::MultiheadAttentionCall call;
  call.causal = c.attr_bool("causal");
  call.need_weights = true;
  if (c.attr_bool("key_padding")) call.key_padding_mask = c.input("key_padding_mask");
  nn::AttentionOutput r;
  if (c.attr_bool("self_attention")) {
    r = attn.forward(c.input("x"), call);
  } else {
    Tensor memory = c.input("memory");
    r = attn.forward(c.input("query"), memory, memory, call);
  }
  c.out("out", r.output);
  c.out("attn", r.weights);
}
HEED_REFERENCE_OP("mha", mha);

void rope(RefCase& c) {
  const int64_t offset = c.attr_int("position_offset");
  const double base = c.attr_double("base");
  c.out("q_out", nn::apply_rotary(c.input("q"), offset, base));
  c.out("k_out", nn::apply_rotary(c.input("k"), offset, base));
}
HEED_REFERENCE_OP("rope", rope);

void sinusoidal_pe(RefCase& c) {
  c.out("pe", nn::sinusoidal_table(c.attr_int("max_len"), c.attr_int("d_model"), c.attr_double("base")));
}
HEED_REFERENCE_OP("sinusoidal_pe", sinusoidal_pe);

void additive_attention(RefCase& c) {
  nn::AdditiveAttention attn({c.attr_int("query_dim"), c.attr_int("key_dim"), c.attr_int("attn_dim"),
                              c.attr_bool("bias")});
  c.load_params(attn);
  Tensor mask = c.attr_bool("key_padding") ? c.input("key_padding_mask") : Tensor();
  auto r = attn.forward(c.input("query"), c.input("key"), c.input("value"), mask);
  c.out("context", r.context);
  c.out("attn", r.attn);
}
HEED_REFERENCE_OP("additive_attention", additive_attention);

}  // namespace
}  // namespace heed::reference
