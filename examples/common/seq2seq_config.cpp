#include "examples/common/seq2seq_config.h"

#include "data/tokenizer.h"

namespace heed::examples {

nn::Seq2SeqOptions seq2seq_options(const Config& c) {
  nn::Seq2SeqOptions o{c.integer("src_vocab"), c.integer("tgt_vocab")};
  o.d_model = c.integer("d_model"), o.nhead = c.integer("nhead");
  o.num_encoder_layers = c.integer("encoder_layers"), o.num_decoder_layers = c.integer("decoder_layers");
  o.dim_feedforward = c.integer("dim_feedforward"), o.dropout = c.real("dropout");
  o.norm_first = c.flag("norm_first");
  o.share_embeddings = c.flag("shared_vocab");
  o.tie_generator = c.flag("tie_output");
  // Checkpoints from before word dropout have none.
  o.src_word_dropout = c.real_or("src_word_dropout", 0.0);
  o.tgt_word_dropout = c.real_or("tgt_word_dropout", 0.0);
  o.max_len = c.integer("max_len") + 2;  // sentences of max_len tokens plus BOS/EOS
  return o;
}

nn::DecodeOptions translation_decode_options(int64_t max_len) {
  nn::DecodeOptions d;
  d.bos_id = data::kBos, d.eos_id = data::kEos, d.pad_id = data::kPad;
  d.max_len = max_len + 1;
  d.max_len_a = 1.5, d.max_len_b = 10;
  d.banned_ids = {data::kPad, data::kBos, data::kUnk};
  return d;
}

}  // namespace heed::examples
