#include "nn/seq2seq.h"

#include <cmath>

#include "tensor/grad_mode.h"
#include "nn/dropout.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {
Seq2SeqOptions checked(Seq2SeqOptions o) {
  HEED_CHECK(o.src_vocab > 0 && o.tgt_vocab > 0, "Seq2SeqTransformer: src_vocab ({}) and tgt_vocab ({}) must be positive",
             o.src_vocab, o.tgt_vocab);
  HEED_CHECK(o.max_len > 0, "Seq2SeqTransformer: max_len must be positive, got {}", o.max_len);
  HEED_CHECK(!o.share_embeddings || o.src_vocab == o.tgt_vocab,
             "Seq2SeqTransformer: share_embeddings needs one vocabulary, but src_vocab is {} and tgt_vocab {}",
             o.src_vocab, o.tgt_vocab);
  HEED_CHECK(o.src_word_dropout >= 0 && o.src_word_dropout < 1 && o.tgt_word_dropout >= 0 && o.tgt_word_dropout < 1,
             "Seq2SeqTransformer: word dropout must be in [0, 1), got src_word_dropout {} and tgt_word_dropout {}",
             o.src_word_dropout, o.tgt_word_dropout);
  if (o.emb_scale == 0) o.emb_scale = std::sqrt(static_cast<double>(o.d_model));
  return o;
}
}  // namespace

Seq2SeqTransformer::Seq2SeqTransformer(const Seq2SeqOptions& options, Generator* gen)
    : Module("Seq2SeqTransformer"), options_(checked(options)), gen_(gen) {
  const Seq2SeqOptions& o = options_;
  TransformerLayerOptions layer{o.d_model,    o.nhead,          o.dim_feedforward, o.dropout,
                                o.activation, o.layer_norm_eps, o.norm_first,      o.num_kv_heads};
  src_embed = register_module("src_embed", std::make_shared<Embedding>(EmbeddingOptions{o.src_vocab, o.d_model}, gen));
  tgt_embed = o.share_embeddings
                  ? src_embed
                  : register_module("tgt_embed", std::make_shared<Embedding>(EmbeddingOptions{o.tgt_vocab, o.d_model}, gen));
  encoder = register_module("encoder", std::make_shared<TransformerEncoder>(layer, o.num_encoder_layers, true, gen));
  decoder = register_module("decoder", std::make_shared<TransformerDecoder>(layer, o.num_decoder_layers, true, gen));
  if (!o.tie_generator)
    generator = register_module("generator", std::make_shared<Linear>(LinearOptions{o.d_model, o.tgt_vocab}, gen));
  pe_ = std::make_shared<SinusoidalPositionalEncoding>(SinusoidalPEOptions{o.d_model, o.max_len, o.pe_base});
  NoGradGuard no_grad;
  for (auto& [name, p] : named_parameters()) {
    if (p.dim() < 2) continue;
    const double bound = std::sqrt(6.0 / static_cast<double>(p.size(0) + p.size(1)));
    p.copy_(uniform(p.shape(), -bound, bound, gen, p.dtype(), p.device()));
  }
}

Tensor Seq2SeqTransformer::embed(const Embedding& table, const Tensor& ids, int64_t offset, double word_dropout,
                                 const char* what) {
  HEED_CHECK(ids.defined() && ids.dim() == 2 && ids.dtype() == DType::Int64,
             "Seq2SeqTransformer: expected {} int64 [B, L], got {}", what,
             ids.defined() ? fmt::format("{} {}", shape_str(ids.shape()), ids.dtype()) : std::string("undefined"));
  HEED_CHECK(offset + ids.size(1) <= options_.max_len,
             "Seq2SeqTransformer: {} reaches position {} but max_len is {}", what, offset + ids.size(1),
             options_.max_len);
  Tensor e = table.forward(ids);
  if (word_dropout > 0 && is_training()) {
    // One draw per token, broadcast over the embedding: a dropped word is gone whole.
    const Tensor keep = ones({ids.size(0), ids.size(1), 1}, e.dtype(), e.device());
    e = mul(e, dropout(keep, word_dropout, true, gen_));
  }
  Tensor x = pe_->forward(mul(e, options_.emb_scale), offset);
  return dropout(x, options_.dropout, is_training(), gen_);
}

Tensor Seq2SeqTransformer::encode(const Tensor& src_ids, const Tensor& src_key_padding_mask) {
  EncoderLayerCall call;
  call.key_padding_mask = src_key_padding_mask;
  return encoder->forward(embed(*src_embed, src_ids, 0, options_.src_word_dropout, "src_ids"), call);
}

Tensor Seq2SeqTransformer::decode(const Tensor& tgt_ids, const Tensor& memory, const Tensor& memory_key_padding_mask,
                                  const Tensor& tgt_key_padding_mask, DecoderCache* cache) {
  const int64_t offset = cache ? cache->length() : 0;
  DecoderLayerCall call;
  call.causal = true;
  call.tgt_key_padding_mask = tgt_key_padding_mask;
  call.memory_key_padding_mask = memory_key_padding_mask;
  Tensor y = decoder->forward(embed(*tgt_embed, tgt_ids, offset, options_.tgt_word_dropout, "tgt_ids"), memory, call, cache);
  return generator ? generator->forward(y) : matmul(y, tgt_embed->weight.t());
}

Tensor Seq2SeqTransformer::forward(const Tensor& src_ids, const Tensor& tgt_ids, const Tensor& src_key_padding_mask,
                                   const Tensor& tgt_key_padding_mask) {
  Tensor memory = encode(src_ids, src_key_padding_mask);
  return decode(tgt_ids, memory, src_key_padding_mask, tgt_key_padding_mask);
}

}  // namespace heed::nn
