#pragma once
// Decoding with the models of nn/: greedy and beam search for a
// Seq2SeqTransformer, sampling (temperature, top-k, top-p) and generation
// for a GPT. All of them use the key/value caches, so each step costs one
// new position, not the whole prefix.
#include <cstdint>
#include <vector>

#include "nn/gpt.h"
#include "nn/seq2seq.h"
#include "tensor/random.h"

namespace heed::nn {

struct DecodeOptions {
  int64_t bos_id = 1;
  int64_t eos_id = 2;
  int64_t pad_id = 0;
  int64_t max_len = 64;  // generated tokens at most (EOS included)
  // Stop at max(max_len_a * source length + max_len_b, 1) tokens when > 0
  // (a common guard against runaway hypotheses); 0: max_len only.
  double max_len_a = 0;
  int64_t max_len_b = 0;
  // Tokens never generated (their logits count as -inf), e.g. PAD, BOS, and a
  // word vocabulary's UNK, which a translation should spell out rather than
  // print. Ids outside the vocabulary are an error.
  std::vector<int64_t> banned_ids;
};

// Greedy decoding of a batch: src [B, S] int64 with its padding mask
// (true = PAD). Returns each row's tokens without BOS, up to and without EOS.
std::vector<std::vector<int64_t>> greedy_decode(Seq2SeqTransformer& model, const Tensor& src, const Tensor& src_pad,
                                                const DecodeOptions& options = {});

struct BeamOptions {
  int64_t beam_size = 4;
  // GNMT length normalisation: score = log p / ((5 + len) / 6)^alpha; 0 = none.
  double length_penalty = 0.6;
};

// Beam search over a batch of sources: every sentence keeps its own beam, and
// the alive hypotheses of all sentences go through the decoder together, one
// pass per step. Returns the best finished hypothesis of each row, as greedy.
std::vector<std::vector<int64_t>> beam_search(Seq2SeqTransformer& model, const Tensor& src, const Tensor& src_pad,
                                              const BeamOptions& beam = {}, const DecodeOptions& options = {});

// The same search over an ensemble: at every step each model scores the
// alive hypotheses and the scores are the log of the mean of the models'
// probabilities (as fairseq's ensemble decoding). The models may differ in
// size and depth; they must share the target vocabulary (and read the same
// source ids). One model gives beam_search's result exactly; beam_size 1 is
// the ensemble's greedy decoding.
std::vector<std::vector<int64_t>> beam_search(const std::vector<Seq2SeqTransformer*>& models, const Tensor& src,
                                              const Tensor& src_pad, const BeamOptions& beam = {},
                                              const DecodeOptions& options = {});

struct SamplingOptions {
  double temperature = 1.0;  // > 0; logits are divided by it
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
  double top_p = 1.0;        // keep the smallest set whose probability reaches top_p; 1 = all
};

// Draws one token id from logits [V] (any float dtype, any device).
int64_t sample_token(const Tensor& logits, const SamplingOptions& options, Generator* gen = nullptr);

// Continues `prompt` (token ids, at least one) by max_new tokens with a
// key/value cache, stopping early at stop_id (>= 0). Returns only the new tokens.
std::vector<int64_t> generate(GPT& model, const std::vector<int64_t>& prompt, int64_t max_new,
                              const SamplingOptions& sampling = {}, Generator* gen = nullptr, int64_t stop_id = -1);

}  // namespace heed::nn
