// A fuzz target for everything heed reads as text from outside: a tokenizer
// as a checkpoint stores it, sentences a user hands to `decode`, the corpora
// (Ding lines, tab-separated pairs) and the BLEU scorer. The first byte picks
// what the rest is fed to. Bad input may throw heed::Error, nothing else: any
// other exception, a crash, a sanitizer report or a broken promise (checked
// below with `promise`) is a finding. Built for libFuzzer with clang
// (tests/fuzz/run_fuzz.sh) and, in every build, as a replay of the corpus in
// tests/fuzz/corpus (ctest fuzz_replay).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "data/bleu.h"
#include "data/corpus.h"
#include "data/tokenize_13a.h"
#include "data/tokenizer.h"
#include "tensor/error.h"

using namespace heed::data;

namespace {

void promise(bool kept, const char* what) {
  if (!kept) {
    std::fprintf(stderr, "fuzz_text: broken promise: %s\n", what);
    std::abort();
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  out.push_back(text.substr(start));
  return out;
}

// One tokenizer of each kind, trained once on a few sentences (with
// accents, digits and punctuation, so every kind has pieces to apply).
const std::vector<std::unique_ptr<Tokenizer>>& trained() {
  static const std::vector<std::unique_ptr<Tokenizer>> tokenizers = [] {
    const std::vector<std::string> texts = {
        "Die Zeitung druckte es in ihrer Ausgabe vom 25. Februar ab.", "Er kam.; Er ist gekommen!",
        "Glück im Spiel, Pech in der Liebe.", "He's a stand-up (kind of) guy, isn't he?",
        "The newspaper printed it on February 25, 2020 at 3.50 EUR.", "Öl, Äpfel und Übermut: 100% \"sicher\"."};
    std::vector<std::unique_ptr<Tokenizer>> t;
    t.push_back(train_char_tokenizer(texts));
    t.push_back(train_word_tokenizer(texts, 1));
    t.push_back(train_bpe_tokenizer(texts, 320));
    return t;
  }();
  return tokenizers;
}

// Everything a tokenizer offers, on `text`; the round trips it promises.
void exercise(const Tokenizer& tok, const std::string& text, uint64_t seed) {
  const std::vector<int64_t> ids = tok.encode(text);
  for (int64_t id : ids) promise(id >= 0 && id < tok.vocab_size(), "encode gives ids inside the vocabulary");
  const std::string back = tok.decode(ids);
  if (tok.kind() == "bpe") {
    promise(back == text, "bpe: decode(encode(text)) == text");
    promise(tok.decode(tok.encode_sampled(text, 0.3, seed)) == text, "bpe: a sampled segmentation decodes to the text");
    promise(tok.encode_sampled(text, 0.0, seed) == ids, "bpe: dropout 0 samples encode's segmentation");
  }
  const int64_t shown = std::min<int64_t>(tok.vocab_size(), 2000);
  for (int64_t id = 0; id < shown; ++id) (void)tok.token(id);
  // decode must refuse ids outside the vocabulary with heed::Error.
  try {
    (void)tok.decode({tok.vocab_size()});
    promise(false, "decode refuses an id past the vocabulary");
  } catch (const heed::Error&) {
  }
  try {
    (void)tok.decode({-1});
    promise(false, "decode refuses a negative id");
  } catch (const heed::Error&) {
  }
}

void run(uint8_t mode, const std::string& rest) {
  static const char* const kinds[] = {"char", "word", "bpe"};
  switch (mode % 8) {
    case 0:
    case 1:
    case 2: {  // a stored tokenizer, possibly damaged
      std::unique_ptr<Tokenizer> tok = deserialize_tokenizer(kinds[mode % 8], rest);
      promise(tok->vocab_size() >= kNumSpecials, "a loaded tokenizer has the special ids");
      const std::string blob = tok->serialize();
      promise(deserialize_tokenizer(tok->kind(), blob)->serialize() == blob, "serialize round-trips");
      exercise(*tok, rest.substr(0, 256), rest.size());
      break;
    }
    case 3:
    case 4:
    case 5:  // a sentence for the trained tokenizers
      exercise(*trained()[mode % 8 - 3], rest, mode);
      break;
    case 6: {  // BLEU and its tokenizer
      const std::vector<std::string> words = tokenize_13a(rest);
      for (const auto& w : words) promise(!w.empty(), "tokenize_13a gives no empty token");
      const std::vector<std::string> lines = lines_of(rest);
      const BleuScore self = corpus_bleu(lines, lines);
      promise(self.bleu >= 0 && self.bleu <= 100 + 1e-9, "BLEU lies in [0, 100]");
      std::vector<std::string> reversed(lines.rbegin(), lines.rend());
      const BleuScore other = corpus_bleu(reversed, lines);
      promise(other.bleu >= 0 && other.bleu <= 100 + 1e-9, "BLEU lies in [0, 100]");
      break;
    }
    case 7: {  // corpus files, and BPE learnt from what they hold
      const std::string path = "/tmp/heed_fuzz_text_" + std::to_string(static_cast<long>(getpid())) + ".txt";
      std::ofstream(path, std::ios::binary) << rest;
      std::vector<SentencePair> pairs;
      try {
        pairs = read_ding_pairs(path);
      } catch (const heed::Error&) {
      }
      try {
        const auto tsv = read_tsv_pairs(path);
        pairs.insert(pairs.end(), tsv.begin(), tsv.end());
      } catch (const heed::Error&) {
      }
      std::remove(path.c_str());
      for (const auto& p : pairs) {
        for (const auto& s : split_joined_sentences(p.src)) promise(p.src.find(s) != std::string::npos, "a part is in its side");
      }
      (void)split_joined_pairs(pairs, {});
      std::vector<std::string> texts;
      for (const auto& p : pairs) texts.push_back(p.src), texts.push_back(p.tgt);
      texts.push_back(rest.substr(0, 512));
      const std::unique_ptr<Tokenizer> bpe = train_bpe_tokenizer(texts, 300);
      exercise(*bpe, rest.substr(0, 512), 7);
      promise(deserialize_tokenizer("bpe", bpe->serialize())->encode(rest) == bpe->encode(rest),
              "a reloaded bpe tokenizer encodes as the original");
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    run(data[0], std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  } catch (const heed::Error&) {
    // bad input, told as heed promises
  }
  return 0;
}
