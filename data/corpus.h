#pragma once
// Text corpora as plain strings: the Ding German-English dictionary's example
// sentences (Debian's trans-de-en), tab-separated pair files, line files,
// seeded splits and synthetic copy/reverse/sort tasks. docs/data.md says
// where the corpora come from and under which licences.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace heed::data {

struct SentencePair {
  std::string src, tgt;
};

// The Ding dictionary (trans-de-en): entry lines "German :: English",
// alternatives split on " | " and paired by position (a line whose sides have
// different counts is skipped), trailing labels in brackets or braces ([ugs.],
// {m}) stripped, pairs kept when both sides have >= min_words words (split on
// spaces) and end in . ! or ?, deduplicated; "#" comment lines skipped.
// German -> English.
struct DingOptions {
  int64_t min_words = 4;
  int64_t max_words = 0;  // 0: no cap; else both sides at most this many words
  // After filtering, also drop labels inside the sentence ("abgemacht [Ös.] haben").
  bool strip_inner_labels = true;
  // Write the curly apostrophe U+2019 as ' (the English side uses both).
  bool plain_apostrophes = true;
};
std::vector<SentencePair> read_ding_pairs(const std::string& path = "/usr/share/trans/de-en", const DingOptions& = {});
// The rest of the dictionary: every alternative that read_ding_pairs does not
// keep as a sentence (words and phrases: "Abholort {m}; Abholstelle {f}" ::
// "collection location; pickup location"), as the first synonym of each side
// with all labels stripped ("Abholort" / "collection location"), deduplicated.
// Extra training pairs that teach the words the sentences rarely show. Lines
// holding a sentence of `held_out` (on either side) are skipped whole, and so
// are phrases equal to one of its sides, so nothing from a validation or test
// sentence's entry reaches training.
std::vector<SentencePair> read_ding_phrases(const std::string& path, const std::vector<SentencePair>& held_out,
                                            const DingOptions& = {});
// "src<TAB>tgt" per line (empty lines skipped, a trailing '\r' dropped); a line
// without exactly one tab -> heed::Error naming the file and line number.
std::vector<SentencePair> read_tsv_pairs(const std::string& path);
// The lines of a text file (without '\n' or a trailing '\r'); a missing file -> heed::Error.
std::vector<std::string> read_lines(const std::string& path);
// The same from a stream (standard input, say), to its end.
std::vector<std::string> read_lines(std::istream& in);

// Train/valid/test split, seeded; pairs with the same source sentence stay in
// one split. Sources are shuffled, then test and valid take whole source
// groups until they hold round(fraction * pairs.size()) pairs.
struct PairSplits {
  std::vector<SentencePair> train, valid, test;
};
PairSplits split_pairs(const std::vector<SentencePair>& pairs, double valid_fraction, double test_fraction,
                       uint64_t seed);

// The sentences one side joins with "; " (about 1,400 Ding sides hold two
// synonymous sentences: "Er kam.; Er ist gekommen."): split where "; "
// follows . ! or ?, each part trimmed; a side without such a join is one part.
// Translating the parts one by one and joining the results with "; " gives
// the reference's shape, and each part fits the model's length.
std::vector<std::string> split_joined_sentences(const std::string& side);
// Training pairs with their joined sentences apart: a pair whose sides join
// the same number of sentences becomes that many pairs, by position; a side
// of one sentence pairs with each sentence of the other side; other pairs
// stay whole. The parts are synonyms, so each new pair is a translation. A
// new pair equal on either side to a sentence (or a part of one) of
// `held_out` is left out, so no validation or test sentence reaches training
// this way. Order kept, duplicates removed.
std::vector<SentencePair> split_joined_pairs(const std::vector<SentencePair>& pairs,
                                             const std::vector<SentencePair>& held_out);

// Synthetic tasks for fast tests: sources of random symbols "a".."z" (then
// "aa", "ab", ... when num_symbols > 26), space separated, length uniform in
// [min_len, max_len]; target = copy / reverse / sort (by symbol index) of the source.
enum class SyntheticTask { Copy, Reverse, Sort };
std::vector<SentencePair> make_synthetic_pairs(SyntheticTask task, int64_t count, int64_t min_len, int64_t max_len,
                                               int64_t num_symbols, uint64_t seed);
// The name of symbol i in make_synthetic_pairs ("a", ..., "z", "aa", "ab", ...).
std::string synthetic_symbol(int64_t i);

}  // namespace heed::data
