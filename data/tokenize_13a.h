#pragma once
// sacrebleu's "13a" tokenizer (mteval-v13a), the one BLEU scores are compared
// with: corpus_bleu (data/bleu.h) counts its tokens, and the word tokenizer
// (data/tokenizer.h) uses them as words, so BLEU sees what the model wrote.
#include <string>
#include <vector>

namespace heed::data {

// Unescapes &quot; &amp; &lt; &gt;, splits off punctuation and symbols,
// splits '.' and ',' unless they sit beside a digit, and '-' after a digit;
// then splits on whitespace.
std::vector<std::string> tokenize_13a(const std::string& text);

}  // namespace heed::data
