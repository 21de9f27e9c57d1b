#pragma once
// Seq2SeqTransformer: the encoder-decoder of "Attention Is All You Need" as
// torch.nn.Transformer plus embeddings and an output layer: token embeddings
// scaled by sqrt(d_model), sinusoidal positions, an encoder and a decoder
// stack each ending in a LayerNorm, and a generator Linear to target logits.
// Parameter names: src_embed.weight, tgt_embed.weight, encoder.layers.{i}.*,
// encoder.norm.*, decoder.layers.{i}.*, decoder.norm.*, generator.*.
//
// Weight tying (Press & Wolf 2017; "three-way tying" of Vaswani et al.): with
// share_embeddings the source and target use one table (src_embed; a joint
// vocabulary, so src_vocab == tgt_vocab) and tgt_embed.weight is not a separate
// parameter; with tie_generator the logits are y @ tgt_embed.weight^T and there
// is no generator parameter. On small corpora tying saves parameters and lets a
// word learnt on one side help the other.
#include <cstdint>
#include <memory>

#include "nn/embedding.h"
#include "nn/positional.h"
#include "nn/transformer.h"

namespace heed::nn {

struct Seq2SeqOptions {
  int64_t src_vocab;
  int64_t tgt_vocab;
  int64_t d_model = 512;
  int64_t nhead = 8;
  int64_t num_encoder_layers = 6;
  int64_t num_decoder_layers = 6;
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::ReLU;
  bool norm_first = false;
  double layer_norm_eps = 1e-5;
  int64_t max_len = 5000;  // longest source or target
  double pe_base = 10000;
  double emb_scale = 0;     // 0: sqrt(d_model)
  int64_t num_kv_heads = 0;  // grouped-query attention; 0: nhead
  bool share_embeddings = false;  // one table for source and target (needs src_vocab == tgt_vocab)
  bool tie_generator = false;     // logits use the target embedding table; no generator parameters
  // Word dropout (Gal & Ghahramani 2016; Sennrich & Zhang 2019's low-resource
  // recipe): in training, each source (target-input) token's whole embedding
  // is zeroed with this probability and the kept ones scaled by 1 / (1 - p),
  // so the model cannot lean on any one word. 0 draws nothing.
  double src_word_dropout = 0;
  double tgt_word_dropout = 0;
};

class Seq2SeqTransformer : public Module {
 public:
  // Every parameter with two or more dimensions (embeddings, projections,
  // generator) starts Xavier-uniform, as PyTorch's translation tutorial and
  // nn.Transformer do; biases as their layers, LayerNorms 1 and 0.
  explicit Seq2SeqTransformer(const Seq2SeqOptions& options, Generator* gen = nullptr);

  // src_ids [B, S] -> memory [B, S, D]. src_key_padding_mask: Bool [B, S].
  Tensor encode(const Tensor& src_ids, const Tensor& src_key_padding_mask = {});
  // tgt_ids [B, T] (the decoder input: BOS, y1, ...) -> logits [B, T, tgt_vocab],
  // causally. With a cache, tgt_ids are the new positions only.
  Tensor decode(const Tensor& tgt_ids, const Tensor& memory, const Tensor& memory_key_padding_mask = {},
                const Tensor& tgt_key_padding_mask = {}, DecoderCache* cache = nullptr);
  // Teacher forcing: encode, then decode the whole target input.
  Tensor forward(const Tensor& src_ids, const Tensor& tgt_ids, const Tensor& src_key_padding_mask = {},
                 const Tensor& tgt_key_padding_mask = {});

  const Seq2SeqOptions& options() const { return options_; }

  std::shared_ptr<Embedding> src_embed, tgt_embed;  // the same module with share_embeddings
  std::shared_ptr<TransformerEncoder> encoder;
  std::shared_ptr<TransformerDecoder> decoder;
  std::shared_ptr<Linear> generator;  // null with tie_generator

 private:
  Tensor embed(const Embedding& table, const Tensor& ids, int64_t offset, double word_dropout, const char* what);

  Seq2SeqOptions options_;
  Generator* gen_;
  std::shared_ptr<SinusoidalPositionalEncoding> pe_;  // not a parameter or buffer: a function of the options
};

}  // namespace heed::nn
