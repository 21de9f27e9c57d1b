#include "data/bleu.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "tensor/error.h"

namespace heed::data {
namespace {

// n-gram -> count, the n tokens joined by a byte no token holds.
using NgramCounts = std::unordered_map<std::string, int64_t>;

NgramCounts count_ngrams(const std::vector<std::string>& tokens, size_t n) {
  NgramCounts counts;
  for (size_t i = 0; i + n <= tokens.size(); ++i) {
    std::string key = tokens[i];
    for (size_t k = 1; k < n; ++k) key += '\x01' + tokens[i + k];
    ++counts[key];
  }
  return counts;
}

// sacrebleu strips trailing whitespace before tokenizing.
std::string rstrip(const std::string& s) {
  size_t end = s.size();
  while (end > 0 && (s[end - 1] == ' ' || (s[end - 1] >= 0x09 && s[end - 1] <= 0x0D))) --end;
  return s.substr(0, end);
}

}  // namespace

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  HEED_CHECK(hypotheses.size() == references.size(), "corpus_bleu: {} hypotheses but {} references",
             hypotheses.size(), references.size());
  int64_t matches[4] = {0, 0, 0, 0}, totals[4] = {0, 0, 0, 0};
  BleuScore score{};
  for (size_t s = 0; s < hypotheses.size(); ++s) {
    std::vector<std::string> hyp = tokenize_13a(rstrip(hypotheses[s]));
    std::vector<std::string> ref = tokenize_13a(rstrip(references[s]));
    score.hyp_len += static_cast<int64_t>(hyp.size());
    score.ref_len += static_cast<int64_t>(ref.size());
    for (size_t n = 1; n <= 4; ++n) {
      NgramCounts hyp_counts = count_ngrams(hyp, n), ref_counts = count_ngrams(ref, n);
      for (const auto& [gram, count] : hyp_counts) {
        auto it = ref_counts.find(gram);
        if (it != ref_counts.end()) matches[n - 1] += std::min(count, it->second);  // clipped counts
      }
      if (hyp.size() >= n) totals[n - 1] += static_cast<int64_t>(hyp.size() - n + 1);
    }
  }
  double log_sum = 0;
  bool any_zero = false;
  for (int n = 0; n < 4; ++n) {
    score.precisions[n] = totals[n] > 0 ? 100.0 * matches[n] / totals[n] : 0.0;
    if (matches[n] == 0) any_zero = true;
    else log_sum += std::log(static_cast<double>(matches[n]) / totals[n]);
  }
  if (score.hyp_len >= score.ref_len) score.brevity_penalty = 1.0;
  else score.brevity_penalty = score.hyp_len > 0 ? std::exp(1.0 - double(score.ref_len) / score.hyp_len) : 0.0;
  score.bleu = any_zero ? 0.0 : 100.0 * score.brevity_penalty * std::exp(log_sum / 4);
  return score;
}

}  // namespace heed::data
