#pragma once
// Embedding: a lookup table, as torch.nn.Embedding.
#include <cstdint>

#include "nn/module.h"

namespace heed::nn {

struct EmbeddingOptions {
  int64_t num_embeddings;
  int64_t embedding_dim;
  int64_t padding_idx = -1;  // -1: none; else that row is zero at init and never gets a gradient
};

class Embedding : public Module {
 public:
  // weight ~ N(0, 1) from `gen` (default: heed::default_generator()), with
  // the padding row zeroed.
  explicit Embedding(const EmbeddingOptions& options, Generator* gen = nullptr);

  // ids int64 [...] -> [..., embedding_dim]. The padding row is read as it
  // is, but receives a zero gradient.
  Tensor forward(const Tensor& ids) const;

  const EmbeddingOptions& options() const { return options_; }

 private:
  EmbeddingOptions options_;  // before weight: initialised first, so checked before weight is drawn

 public:
  Tensor& weight;
};

}  // namespace heed::nn
