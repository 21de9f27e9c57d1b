#pragma once
// GPT: a decoder-only language model. Token and learned position embeddings,
// pre-norm causal blocks (TransformerEncoderLayer with norm_first and GELU),
// a final LayerNorm and a bias-free lm_head (optionally tied to the token
// embedding). Parameter names: tok_embed.weight, pos_embed.weight,
// blocks.{i}.{norm1,self_attn,norm2,linear1,linear2}.*, ln_f.*, lm_head.weight.
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/embedding.h"
#include "nn/transformer.h"

namespace heed::nn {

struct GPTOptions {
  int64_t vocab;
  int64_t block_size;  // longest context: rows of the position table
  int64_t d_model = 256;
  int64_t nhead = 4;
  int64_t num_layers = 4;
  int64_t dim_feedforward = 0;  // 0: 4 * d_model
  double dropout = 0;
  double layer_norm_eps = 1e-5;
  bool tied_lm_head = false;  // logits use tok_embed.weight; no lm_head parameter
  int64_t num_kv_heads = 0;   // grouped-query attention; 0: nhead
  Activation activation = Activation::GELU;
  bool rotary = false;  // RoPE in every block instead of the learned position table (no pos_embed)
};

// One key/value cache per block, for generation.
using GPTCache = std::vector<KVCache>;

class GPT : public Module {
 public:
  explicit GPT(const GPTOptions& options, Generator* gen = nullptr);

  // ids [B, T] int64 -> logits [B, T, vocab]. With a cache, ids are the new
  // positions only (they continue after cache length), and the cache grows.
  Tensor forward(const Tensor& ids, GPTCache* cache = nullptr);

  const GPTOptions& options() const { return options_; }

  std::shared_ptr<Embedding> tok_embed, pos_embed;  // pos_embed null with rotary
  std::shared_ptr<ModuleList<TransformerEncoderLayer>> blocks;
  std::shared_ptr<LayerNorm> ln_f;
  std::shared_ptr<Linear> lm_head;  // null when tied

 private:
  GPTOptions options_;
  Generator* gen_;
  // 0 .. block_size - 1 on the device of the last input, for the learned
  // positions: made once, not copied from the host every forward.
  Tensor positions_;
};

}  // namespace heed::nn
