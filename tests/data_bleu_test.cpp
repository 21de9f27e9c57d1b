// BLEU and its 13a tokenizer. Expected token lists come from sacrebleu's
// regexes run in Python; expected scores are worked out by hand below.
#include <catch2/catch.hpp>

#include <cmath>

#include "data/bleu.h"
#include "tensor/error.h"

using namespace heed::data;
using Strings = std::vector<std::string>;
using Catch::Contains;

TEST_CASE("tokenize_13a splits punctuation as sacrebleu does", "[data][bleu]") {
  CHECK(tokenize_13a("Hello, world!") == Strings{"Hello", ",", "world", "!"});
  CHECK(tokenize_13a("It costs $3.50, isn't it?") == Strings{"It", "costs", "$", "3.50", ",", "isn't", "it", "?"});
  CHECK(tokenize_13a("1,000 people") == Strings{"1,000", "people"});
  CHECK(tokenize_13a("2010-2015 well-known") == Strings{"2010", "-", "2015", "well-known"});
  CHECK(tokenize_13a("a &amp; b &quot;q&quot;") == Strings{"a", "&", "b", "\"", "q", "\""});
  CHECK(tokenize_13a("U.S.A.") == Strings{"U", ".", "S", ".", "A", "."});
  CHECK(tokenize_13a("Größe: 3,5 cm.") == Strings{"Größe", ":", "3,5", "cm", "."});
  CHECK(tokenize_13a("x...y") == Strings{"x", ".", ".", ".", "y"});
  CHECK(tokenize_13a("(a)[b]{c}") == Strings{"(", "a", ")", "[", "b", "]", "{", "c", "}"});
  CHECK(tokenize_13a("Tab\tand\xC2\xA0nbsp") == Strings{"Tab", "and", "nbsp"});  // U+00A0 is whitespace to Python
  CHECK(tokenize_13a("a.,b") == Strings{"a", ".", ",", "b"});
  CHECK(tokenize_13a("   ").empty());
}

TEST_CASE("corpus_bleu of a perfect match is 100", "[data][bleu]") {
  BleuScore s = corpus_bleu({"The cat sat on the mat.", "Hello there, friend!"},
                            {"The cat sat on the mat.", "Hello there, friend!"});
  CHECK(s.bleu == Approx(100.0));
  for (double p : s.precisions) CHECK(p == Approx(100.0));
  CHECK(s.brevity_penalty == 1.0);
  CHECK(s.hyp_len == 12);
  CHECK(s.ref_len == 12);
}

TEST_CASE("corpus_bleu counts clipped n-gram matches", "[data][bleu]") {
  // hyp: the cat sat on the red mat (7 tokens); ref: the cat sat on the mat (6)
  // 1-grams: the x2 (ref has 2), cat, sat, on, mat match; red not: 6/7
  // 2-grams: the cat, cat sat, sat on, on the match; the red, red mat not: 4/6
  // 3-grams: the cat sat, cat sat on, sat on the: 3/5; 4-grams: 2/4.
  BleuScore s = corpus_bleu({"the cat sat on the red mat"}, {"the cat sat on the mat"});
  CHECK(s.precisions[0] == Approx(100.0 * 6 / 7));
  CHECK(s.precisions[1] == Approx(100.0 * 4 / 6));
  CHECK(s.precisions[2] == Approx(100.0 * 3 / 5));
  CHECK(s.precisions[3] == Approx(100.0 * 2 / 4));
  CHECK(s.brevity_penalty == 1.0);
  CHECK(s.bleu == Approx(100.0 * std::pow(6.0 / 7 * 4.0 / 6 * 3.0 / 5 * 2.0 / 4, 0.25)));  // 64.346
  CHECK(s.bleu == Approx(64.346).margin(1e-3));

  // Repeating a matching word does not help: "the" x4 against a reference with 2.
  BleuScore clipped = corpus_bleu({"the the the the"}, {"the cat the dog"});
  CHECK(clipped.precisions[0] == Approx(50.0));
}

TEST_CASE("corpus_bleu applies the brevity penalty over the corpus", "[data][bleu]") {
  // All n-grams match; 10 hypothesis tokens against 14 reference tokens.
  BleuScore s = corpus_bleu({"the cat sat on the mat", "a b c d"}, {"the cat sat on the mat", "a b c d e f g h"});
  CHECK(s.hyp_len == 10);
  CHECK(s.ref_len == 14);
  CHECK(s.brevity_penalty == Approx(std::exp(1.0 - 14.0 / 10.0)));
  CHECK(s.bleu == Approx(100.0 * std::exp(-0.4)));
}

TEST_CASE("corpus_bleu is 0 without any 4-gram match, and checks its inputs", "[data][bleu]") {
  CHECK(corpus_bleu({"the cat"}, {"the cat"}).bleu == 0.0);  // no 3- or 4-grams at all: no smoothing
  CHECK(corpus_bleu({""}, {"a b c d"}).bleu == 0.0);
  CHECK(corpus_bleu({"w x y z"}, {"a b c d"}).bleu == 0.0);
  REQUIRE_THROWS_WITH(corpus_bleu({"a"}, {"a", "b"}), Contains("corpus_bleu: 1 hypotheses but 2 references"));
}
