// Reference ops of transformer layers and whole models:
// transformer_encoder_layer, transformer_decoder_layer, seq2seq_transformer, gpt.
#include "nn/layers.h"
#include "nn/loss.h"
#include "tests/reference/case.h"

namespace heed::reference {
namespace {

// The fields the options of a layer, a Seq2SeqTransformer and a GPT share,
// from the attributes of the same names.
template <class Options>
void read_shared_options(RefCase& c, Options& o) {
  o.d_model = c.attr_int("d_model");
  o.nhead = c.attr_int("nhead");
  o.dim_feedforward = c.attr_int("dim_feedforward");
  o.dropout = c.attr_double("dropout");
  o.activation = nn::parse_activation(c.attr_string("activation"));
  o.layer_norm_eps = c.attr_double("layer_norm_eps");
}

nn::TransformerLayerOptions layer_options(RefCase& c) {
  nn::TransformerLayerOptions o{0, 0};
  read_shared_options(c, o);
  o.norm_first = c.attr_bool("norm_first");
  return o;
}

nn::CrossEntropyOptions loss_options(RefCase& c) {
  nn::CrossEntropyOptions o;
  o.ignore_index = c.attr_int("ignore_index");
  o.label_smoothing = c.attr_double("label_smoothing");
  return o;
}

void transformer_encoder_layer(RefCase& c) {
  nn::TransformerEncoderLayer layer(layer_options(c));
  c.load_params(layer);
  nn::EncoderLayerCall call;
  call.key_padding_mask = c.input("src_key_padding_mask");
  c.out("out", layer.forward(c.input("src"), call));
}
HEED_REFERENCE_OP("transformer_encoder_layer", transformer_encoder_layer);

void transformer_decoder_layer(RefCase& c) {
  nn::TransformerDecoderLayer layer(layer_options(c));
  c.load_params(layer);
  nn::DecoderLayerCall call;
  call.causal = c.attr_bool("causal");
  call.memory_key_padding_mask = c.input("memory_key_padding_mask");
  c.out("out", layer.forward(c.input("tgt"), c.input("memory"), call));
}
HEED_REFERENCE_OP("transformer_decoder_layer", transformer_decoder_layer);

void seq2seq_transformer(RefCase& c) {
  nn::Seq2SeqOptions o{c.attr_int("src_vocab"), c.attr_int("tgt_vocab")};
  read_shared_options(c, o);
  o.num_encoder_layers = c.attr_int("num_encoder_layers");
  o.num_decoder_layers = c.attr_int("num_decoder_layers");
  o.norm_first = c.attr_bool("norm_first");
  o.pe_base = c.attr_double("pe_base");
  o.emb_scale = c.attr_double("emb_scale");
  Tensor src = c.input("src_ids"), tgt_in = c.input("tgt_in_ids");
  o.max_len = std::max(src.size(1), tgt_in.size(1));
  nn::Seq2SeqTransformer model(o);
  c.load_params(model);
  Tensor logits = model.forward(src, tgt_in, c.input("src_key_padding_mask"), c.input("tgt_key_padding_mask"));
  c.out("logits", logits);
  c.out("loss", nn::cross_entropy(logits, c.input("tgt_out_ids"), loss_options(c)));
}
HEED_REFERENCE_OP("seq2seq_transformer", seq2seq_transformer);

void gpt(RefCase& c) {
  nn::GPTOptions o{c.attr_int("vocab"), c.attr_int("block_size")};
  read_shared_options(c, o);
  o.num_layers = c.attr_int("num_layers");
  o.tied_lm_head = c.attr_bool("tied_lm_head");
  HEED_CHECK(c.attr_bool("norm_first"), "gpt: heed's GPT is pre-norm; the file asks for norm_first = 0");
  nn::GPT model(o);
  c.load_params(model);
  Tensor logits = model.forward(c.input("input_ids"));
  c.out("logits", logits);
  c.out("loss", nn::cross_entropy(logits, c.input("target_ids"), loss_options(c)));
}
HEED_REFERENCE_OP("gpt", gpt);

}  // namespace
}  // namespace heed::reference
