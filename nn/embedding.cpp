#include "nn/embedding.h"

#include "tensor/grad_mode.h"
#include "tensor/error.h"

namespace heed::nn {

namespace {
const EmbeddingOptions& checked(const EmbeddingOptions& o) {
  HEED_CHECK(o.num_embeddings > 0 && o.embedding_dim > 0,
             "Embedding: num_embeddings and embedding_dim must be positive, got num_embeddings={} embedding_dim={}",
             o.num_embeddings, o.embedding_dim);
  HEED_CHECK(o.padding_idx == -1 || (o.padding_idx >= 0 && o.padding_idx < o.num_embeddings),
             "Embedding: padding_idx must be -1 (none) or in [0, {}), got {}", o.num_embeddings, o.padding_idx);
  return o;
}

Tensor initial_weight(const EmbeddingOptions& o, Generator* gen) {
  NoGradGuard no_grad;
  Tensor w = normal({o.num_embeddings, o.embedding_dim}, 0.0, 1.0, gen);
  if (o.padding_idx >= 0) {
    Tensor row = w.select(0, o.padding_idx);
    row.zero_();
  }
  return w;
}
}  // namespace

Embedding::Embedding(const EmbeddingOptions& options, Generator* gen)
    : Module("Embedding"), options_(checked(options)), weight(register_parameter("weight", initial_weight(options, gen))) {}

Tensor Embedding::forward(const Tensor& ids) const {
  HEED_CHECK(ids.dtype() == DType::Int64, "Embedding: ids must be int64, got {}", ids.dtype());
  Tensor out = embedding(weight, ids);
  if (options_.padding_idx >= 0 && out.requires_grad()) {
    // Same values; the positions that read the padding row take theirs from a
    // detached copy, so that row gets no gradient.
    Tensor is_pad = unsqueeze(ids == static_cast<double>(options_.padding_idx), -1);
    out = where(is_pad, detach(out), out);
  }
  return out;
}

}  // namespace heed::nn
