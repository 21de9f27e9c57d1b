#pragma once
// The Seq2SeqTransformer a translate checkpoint describes. translate (which
// writes the configuration) and attention (which reads it back) build the
// model through this one function, so an option added to the model cannot be
// kept by one program and forgotten by the other.
#include "examples/common/run_config.h"
#include "nn/generation.h"
#include "nn/seq2seq.h"

namespace heed::examples {

// From the keys translate stores: src_vocab, tgt_vocab, d_model, nhead,
// encoder_layers, decoder_layers, dim_feedforward, dropout, max_len, and the
// optional norm_first, shared_vocab and tie_output (0 when absent, as in
// checkpoints written before they existed).
nn::Seq2SeqOptions seq2seq_options(const Config& config);

// How translate's models decode: the data/ special ids, at most max_len + 1
// tokens and 1.5 x the source length + 10, never PAD, BOS or UNK (a word
// vocabulary's unknown-word token is no translation; a BPE one never needs it).
nn::DecodeOptions translation_decode_options(int64_t max_len);

}  // namespace heed::examples
