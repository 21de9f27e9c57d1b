#pragma once
// Turning encoded text into int64 tensors for training: padded translation
// batches bucketed by length, and random windows for language models. Both
// are deterministic functions of a seed and a position, so a run resumed
// from a checkpoint sees exactly the batches it would have seen. take_part
// splits a batch's rows among data-parallel ranks or micro-batches.
//
// Shapes: B batch, S source length (+EOS), T target length (+BOS or +EOS).
#include <cstdint>
#include <functional>
#include <vector>

#include "tensor/tensor.h"

namespace heed::data {

struct TranslationBatch {
  Tensor src;                    // int64 [B, S]: tokens, EOS, PAD...
  Tensor tgt_in;                 // int64 [B, T]: BOS, tokens, PAD...
  Tensor tgt_out;                // int64 [B, T]: tokens, EOS, PAD...
  Tensor src_pad;                // bool [B, S], true at PAD
  Tensor tgt_pad;                // bool [B, T], true at PAD in tgt_in
  int64_t num_tgt_tokens = 0;    // non-PAD entries of tgt_out
  std::vector<int64_t> indices;  // row b is examples[indices[b]] of the constructor's vector
};

struct EncodedPair {
  std::vector<int64_t> src, tgt;  // without BOS/EOS
};

// Batches of at most max_tokens padded tokens (B * (S + T) <= max_tokens; an
// example too long for that alone gets a batch of its own). Examples are
// shuffled once (seeded), cut into windows of about 50 batches, sorted by
// length within each window and packed greedily, so padding is small; the
// batches are fixed after construction and their order is reshuffled each
// epoch from (seed, epoch). With shuffle = false, examples are sorted by
// length over the whole set and the order never changes.
class TranslationBatcher {
 public:
  // max_len > 0 drops examples whose src + EOS or BOS + tgt would be longer
  // than max_len (so S, T <= max_len always).
  TranslationBatcher(std::vector<EncodedPair> examples, int64_t max_tokens, uint64_t seed, bool shuffle = true,
                     int64_t max_len = 0 /*0: keep all*/);
  TranslationBatch next();  // wraps to the next epoch automatically
  // Subword regularisation: from now on next() fills each row with
  // resample(example, epoch), a pure function of both (so a resumed run sees
  // the same rows), instead of the example as given; a result longer than
  // max_len falls back to the given example. Batches stay packed by the given
  // examples' lengths, so a batch of resampled rows may run somewhat over
  // max_tokens (with BPE-dropout 0.1, about a tenth). all_batches() is not affected.
  using Resample = std::function<EncodedPair(int64_t example, int64_t epoch)>;
  void set_resample(Resample resample) { resample_ = std::move(resample); }
  int64_t epoch() const { return position_ / batches_per_epoch(); }
  int64_t position() const { return position_; }  // batches drawn so far in total
  // Resume: afterwards next() returns what it would have after `position` draws.
  void set_position(int64_t position);
  int64_t batches_per_epoch() const { return static_cast<int64_t>(batches_.size()); }
  // One pass over all kept examples, sorted by length, in a fixed order (validation).
  std::vector<TranslationBatch> all_batches() const;
  int64_t num_examples() const { return static_cast<int64_t>(kept_.size()); }  // after max_len
  int64_t num_dropped() const { return num_dropped_; }                         // by max_len

 private:
  std::vector<std::vector<int64_t>> pack(const std::vector<int64_t>& order) const;
  // epoch >= 0 with a resample set: the rows are resampled for that epoch.
  TranslationBatch make_batch(const std::vector<int64_t>& rows, int64_t epoch = -1) const;

  std::vector<EncodedPair> examples_;
  std::vector<int64_t> kept_;  // indices into examples_ that passed max_len
  int64_t max_tokens_;
  uint64_t seed_;
  bool shuffle_;
  int64_t max_len_;
  Resample resample_;
  int64_t num_dropped_ = 0;
  std::vector<std::vector<int64_t>> batches_;  // each a list of indices into examples_
  int64_t position_ = 0;
  int64_t order_epoch_ = -1;   // the epoch order_ was made for
  std::vector<int64_t> order_;  // batch order of that epoch
};

// Language-model batches: random windows of block+1 tokens from one long id
// stream, x = window[:-1], y = window[1:], int64 [B, block]. Window starts of
// batch i are a pure function of (seed, i), so resuming is exact.
struct LMBatch {
  Tensor x, y;  // int64 [B, block]
};

class LMBatcher {
 public:
  LMBatcher(std::vector<int64_t> ids, int64_t batch_size, int64_t block_size, uint64_t seed);
  LMBatch next();
  int64_t position() const { return position_; }
  void set_position(int64_t position);
  // Consecutive non-overlapping windows from the start (x of one window ends
  // where the next begins), batch_size per batch, the last batch possibly
  // smaller; at most max_batches when > 0. For validation.
  std::vector<LMBatch> sequential_batches(int64_t max_batches = 0) const;

 private:
  LMBatch make_batch(const std::vector<int64_t>& starts) const;

  std::vector<int64_t> ids_;
  int64_t batch_size_, block_size_;
  uint64_t seed_;
  int64_t position_ = 0;
};

// Part `part` of `parts` (0 <= part < parts) of a batch's rows, for data-parallel
// training: rows part, part + parts, part + 2·parts, ... (interleaved, so that
// in a TranslationBatch, whose rows are packed by length, every part gets rows
// of similar lengths and the ranks similar work). The parts of 0..parts-1 hold
// every row exactly once. A TranslationBatch part is re-padded to its own
// longest row (S, T can shrink) and counts its own num_tgt_tokens; indices follow
// the rows. A part can be empty (parts > rows): then B = 0 and every tensor has
// shape [0, 0], num_tgt_tokens 0. An LMBatch part keeps its width: an empty
// one is [0, block].
TranslationBatch take_part(const TranslationBatch& batch, int64_t part, int64_t parts);
LMBatch take_part(const LMBatch& batch, int64_t part, int64_t parts);

}  // namespace heed::data
