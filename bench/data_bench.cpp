// How fast the text pipeline is on the real corpora: BPE training on about
// 1 MB of the King James Bible, encoding the Ding sentence pairs with each
// tokenizer, and batching them. Needs the bible-kjv and trans-de-en packages.
//   ./build/bench/data_bench [bpe_vocab_size=8000]
#include <chrono>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_util.h"
#include "data/batching.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "tensor/error.h"
#include "tensor/ops.h"

using namespace heed::data;

namespace {
using heed::bench::seconds_since;

// Verses without their references, straight from the `bible` program.
std::vector<std::string> read_kjv() {
  std::vector<std::string> verses;
  FILE* pipe = popen("bible -f Gen1:1-Rev22:21 2>/dev/null", "r");
  if (!pipe) return verses;
  char buf[8192];
  while (fgets(buf, sizeof buf, pipe)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    size_t space = line.find(' ');
    if (space != std::string::npos) verses.push_back(line.substr(space + 1));
  }
  pclose(pipe);
  return verses;
}
}  // namespace

int main(int argc, char** argv) {
  const int64_t vocab = argc > 1 ? std::stoll(argv[1]) : 8000;
  using clock = std::chrono::steady_clock;

  std::vector<std::string> verses = read_kjv();
  if (verses.empty()) {
    fmt::print("bible-kjv is not installed (apt-get install bible-kjv); skipping the KJV part\n");
  } else {
    std::vector<std::string> mb;
    size_t bytes = 0;
    for (const auto& v : verses) {
      if (bytes >= (1u << 20)) break;
      mb.push_back(v);
      bytes += v.size() + 1;
    }
    auto t0 = clock::now();
    auto tok = train_bpe_tokenizer(mb, vocab);
    fmt::print("bpe train  KJV {} verses, {} bytes -> vocab {}: {:.2f} s\n", mb.size(), bytes, tok->vocab_size(),
               seconds_since(t0));
  }

  std::vector<SentencePair> pairs;
  try {
    pairs = read_ding_pairs();
  } catch (const heed::Error& e) {
    fmt::print("{}\n(trans-de-en is not installed; skipping the Ding part)\n", e.what());
    return 0;
  }
  PairSplits splits = split_pairs(pairs, 0.05, 0.05, 1);
  std::vector<std::string> de, en;
  for (const auto& p : splits.train) {
    de.push_back(p.src);
    en.push_back(p.tgt);
  }
  fmt::print("ding       {} pairs, {} in train\n", pairs.size(), splits.train.size());
  auto t0 = clock::now();
  auto bpe_de = train_bpe_tokenizer(de, vocab), bpe_en = train_bpe_tokenizer(en, vocab);
  fmt::print("bpe train  Ding de+en, vocab {} each: {:.2f} s\n", vocab, seconds_since(t0));
  auto word_de = train_word_tokenizer(de), word_en = train_word_tokenizer(en);
  auto char_de = train_char_tokenizer(de), char_en = train_char_tokenizer(en);

  std::vector<EncodedPair> encoded;
  for (auto [name, src_tok, tgt_tok] : {std::make_tuple("bpe", bpe_de.get(), bpe_en.get()),
                                        std::make_tuple("word", word_de.get(), word_en.get()),
                                        std::make_tuple("char", char_de.get(), char_en.get())}) {
    t0 = clock::now();
    std::vector<EncodedPair> enc;
    size_t ids = 0;
    for (const auto& p : splits.train) {
      enc.push_back({src_tok->encode(p.src), tgt_tok->encode(p.tgt)});
      ids += enc.back().src.size() + enc.back().tgt.size();
    }
    fmt::print("encode     Ding train with {:4} (vocab {:5}/{:5}): {} ids in {:.3f} s\n", name,
               src_tok->vocab_size(), tgt_tok->vocab_size(), ids, seconds_since(t0));
    if (std::string(name) == "bpe") encoded = std::move(enc);
  }

  t0 = clock::now();
  TranslationBatcher batcher(encoded, 4096, 1);
  int64_t real = 0, padded = 0;
  for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    TranslationBatch b = batcher.next();
    real += b.num_tgt_tokens + b.src.numel() - heed::sum(heed::to_dtype(b.src_pad, heed::DType::Int64)).item<int64_t>();
    padded += b.src.numel() + b.tgt_out.numel();
  }
  fmt::print("batch      one epoch, max_tokens 4096: {} batches, {:.1f}% padding, {:.3f} s\n",
             batcher.batches_per_epoch(), 100.0 * (padded - real) / padded, seconds_since(t0));
  return 0;
}
