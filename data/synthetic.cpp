// Copy / reverse / sort tasks: tiny translation problems whose answer is known,
// for tests and for checking that a model can learn at all.
#include <algorithm>

#include "data/corpus.h"
#include "data/random.h"
#include "tensor/error.h"

namespace heed::data {

std::string synthetic_symbol(int64_t i) {
  HEED_CHECK(i >= 0, "synthetic_symbol: index must be >= 0, got {}", i);
  // Bijective base 26: a..z, aa..zz, aaa..
  std::string name;
  for (int64_t k = i + 1; k > 0; k = (k - 1) / 26) name.insert(name.begin(), static_cast<char>('a' + (k - 1) % 26));
  return name;
}

std::vector<SentencePair> make_synthetic_pairs(SyntheticTask task, int64_t count, int64_t min_len, int64_t max_len,
                                               int64_t num_symbols, uint64_t seed) {
  HEED_CHECK(count >= 0, "make_synthetic_pairs: count must be >= 0, got {}", count);
  HEED_CHECK(min_len >= 1 && max_len >= min_len, "make_synthetic_pairs: need 1 <= min_len <= max_len, got [{}, {}]",
             min_len, max_len);
  HEED_CHECK(num_symbols >= 1, "make_synthetic_pairs: num_symbols must be >= 1, got {}", num_symbols);
  auto join = [](const std::vector<int64_t>& seq) {
    std::string s;
    for (size_t i = 0; i < seq.size(); ++i) s += (i ? " " : "") + synthetic_symbol(seq[i]);
    return s;
  };
  SplitMix64 rng(seed);
  std::vector<SentencePair> pairs;
  pairs.reserve(static_cast<size_t>(count));
  for (int64_t n = 0; n < count; ++n) {
    int64_t len = min_len + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_len - min_len + 1)));
    std::vector<int64_t> seq(static_cast<size_t>(len));
    for (int64_t& s : seq) s = static_cast<int64_t>(rng.below(static_cast<uint64_t>(num_symbols)));
    std::vector<int64_t> target = seq;
    if (task == SyntheticTask::Reverse) std::reverse(target.begin(), target.end());
    if (task == SyntheticTask::Sort) std::sort(target.begin(), target.end());
    pairs.push_back({join(seq), join(target)});
  }
  return pairs;
}

}  // namespace heed::data
