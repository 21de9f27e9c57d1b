#pragma once
// Corpus BLEU as sacrebleu computes it, so heed's numbers can be put beside
// published ones: 13a tokenization, n-grams up to 4, one reference per
// hypothesis, brevity penalty, no smoothing.
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenize_13a.h"  // the tokens it counts

namespace heed::data {

struct BleuScore {
  double bleu;               // 0..100
  double precisions[4];      // modified n-gram precisions in percent (as sacrebleu prints them)
  double brevity_penalty;    // exp(1 - ref_len / hyp_len) when hyp_len < ref_len, else 1
  int64_t hyp_len, ref_len;  // 13a tokens over the corpus
};

// Corpus BLEU-4 on detokenized strings (hypotheses[i] is scored against
// references[i]). A zero n-gram precision makes BLEU 0 (sacrebleu's
// smooth_method='none'; its default 'exp' differs only in that case).
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

}  // namespace heed::data
