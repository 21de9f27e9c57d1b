// Reference ops of heed's layers: linear, embedding, layer_norm, rms_norm.
#include "nn/layers.h"
#include "tests/reference/case.h"

namespace heed::reference {
namespace {

// y = x W^T + b over the last axis (nn::Linear).
void linear(RefCase& c) {
  nn::Linear lin({c.attr_int("in_features"), c.attr_int("out_features"), c.attr_bool("has_bias")});
  c.load_params(lin);
  c.out("y", lin.forward(c.input("x")));
}
HEED_REFERENCE_OP("linear", linear);

// y[...] = weight[ids[...]]; the padding row (-1: none) gets no gradient.
void embedding(RefCase& c) {
  nn::Embedding emb({c.attr_int("num_embeddings"), c.attr_int("embedding_dim"), c.attr_int("padding_idx")});
  c.load_params(emb);
  c.out("y", emb.forward(c.input("ids")));
}
HEED_REFERENCE_OP("embedding", embedding);

void layer_norm(RefCase& c) {
  nn::LayerNorm norm({c.attr_int("normalized_dim"), c.attr_double("eps")});
  c.load_params(norm);
  c.out("y", norm.forward(c.input("x")));
}
HEED_REFERENCE_OP("layer_norm", layer_norm);

void rms_norm(RefCase& c) {
  nn::RMSNorm norm({c.attr_int("normalized_dim"), c.attr_double("eps")});
  c.load_params(norm);
  c.out("y", norm.forward(c.input("x")));
}
HEED_REFERENCE_OP("rms_norm", rms_norm);

}  // namespace
}  // namespace heed::reference
