#pragma once
// Tokenizers: text <-> int64 ids for the embedding layers. Three kinds share
// one interface and one set of special ids, so training programs and
// checkpoints need not know which is in use:
//   char  UTF-8 code points seen in training (others -> <unk>)
//   word  BLEU's 13a tokens (words and punctuation apart), frequent ones kept
//   bpe   byte-level BPE: bytes 0..255 plus learned merges; nothing is unknown
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace heed::data {

// Special ids are the same in every tokenizer (tokens "<pad>", "<bos>", "<eos>", "<unk>").
constexpr int64_t kPad = 0, kBos = 1, kEos = 2, kUnk = 3;
constexpr int64_t kNumSpecials = 4;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;                                   // "char", "word", "bpe"
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;  // no BOS/EOS added; unknown -> kUnk
  // Subword regularisation (BPE-dropout, Provilkov et al. 2020): one of the
  // text's many segmentations, drawn from `seed`: each merge a step could
  // apply is left out of that step with probability `dropout`, so words come
  // out in smaller pieces now and then. dropout 0 gives encode(text), 1 the
  // bytes; decode gives the text back either way. Only bpe has segmentations
  // to draw from: the other kinds accept dropout 0 and throw otherwise.
  virtual std::vector<int64_t> encode_sampled(const std::string& text, double dropout, uint64_t seed) const;
  // Skips PAD/BOS/EOS (it does not stop at EOS: cut the ids first if needed).
  // An unknown id (out of range) throws.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;  // including the 4 specials
  // A human-readable piece for pictures: spaces shown as U+2581 "▁", control
  // characters and stray bytes as <0xNN>.
  virtual std::string token(int64_t id) const = 0;
  virtual std::string serialize() const = 0;  // text blob (stored in checkpoints)
};

// Rebuilds any tokenizer from kind + serialize() output; a malformed blob ->
// heed::Error naming what is wrong.
std::unique_ptr<Tokenizer> deserialize_tokenizer(const std::string& kind, const std::string& blob);

// Character level: every UTF-8 code point in `texts` (a byte that is not valid
// UTF-8 counts as a unit of its own); ids sorted by code point after the specials.
std::unique_ptr<Tokenizer> train_char_tokenizer(const std::vector<std::string>& texts);
// Word level: tokenize_13a (data/tokenize_13a.h) tokens with count >= min_count, the
// max_vocab - 4 most frequent when max_vocab > 0 (ties by first appearance).
// decode joins tokens with single spaces ("Hello , world !").
std::unique_ptr<Tokenizer> train_word_tokenizer(const std::vector<std::string>& texts, int64_t min_count = 2,
                                                int64_t max_vocab = 0 /*0: no cap*/);
// Byte-level BPE: ids 4..259 are the bytes 0..255, then one id per learned
// merge, most frequent pair first, until vocab_size (>= 260) or until no pair
// occurs twice. Text is pre-split into pieces (a run of letters, of digits or
// of other non-space bytes, carrying the one whitespace byte before it, GPT-2
// style; bytes >= 0x80 count as letters), so merges stay inside words.
// decode(encode(s)) == s for any bytes.
std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::vector<std::string>& texts, int64_t vocab_size);

}  // namespace heed::data
