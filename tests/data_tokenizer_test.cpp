// Tokenizers: round trips, unknowns, special ids, serialization. (Speed: bench/data_bench.cpp.)
#include <catch2/catch.hpp>

#include <map>

#include "data/tokenizer.h"
#include "tensor/error.h"

using namespace heed::data;
using Catch::Contains;
using Ids = std::vector<int64_t>;

namespace {
// Every specials' id and token is the same in all kinds.
void check_specials(const Tokenizer& tok) {
  CHECK(tok.token(kPad) == "<pad>");
  CHECK(tok.token(kBos) == "<bos>");
  CHECK(tok.token(kEos) == "<eos>");
  CHECK(tok.token(kUnk) == "<unk>");
  REQUIRE_THROWS_WITH(tok.token(tok.vocab_size()), Contains("outside the vocabulary"));
  REQUIRE_THROWS_WITH(tok.decode({-1}), Contains("outside the vocabulary"));
}

void check_reloads(const Tokenizer& tok, const std::vector<std::string>& texts) {
  auto copy = deserialize_tokenizer(tok.kind(), tok.serialize());
  CHECK(copy->kind() == tok.kind());
  CHECK(copy->vocab_size() == tok.vocab_size());
  CHECK(copy->serialize() == tok.serialize());
  for (int64_t id = 0; id < tok.vocab_size(); ++id) CHECK(copy->token(id) == tok.token(id));
  for (const auto& t : texts) CHECK(copy->encode(t) == tok.encode(t));
}
}  // namespace

TEST_CASE("char tokenizer round-trips UTF-8 code points", "[data][tokenizer]") {
  auto tok = train_char_tokenizer({"Größe", "abc\n"});
  CHECK(tok->kind() == "char");
  // G r ö ß e a b c \n: 9 distinct code points + 4 specials.
  CHECK(tok->vocab_size() == 13);
  Ids ids = tok->encode("Größe");
  CHECK(ids.size() == 5);  // code points, not bytes
  CHECK(tok->decode(ids) == "Größe");
  CHECK(tok->token(ids[2]) == "ö");
  CHECK(tok->token(tok->encode("\n")[0]) == "<0x0A>");
  // Unknown characters become <unk>; specials are skipped on decode.
  Ids unk = tok->encode("aXé");
  CHECK(unk == Ids{tok->encode("a")[0], kUnk, kUnk});
  Ids framed = {kBos, ids[0], ids[1], kEos, kPad, kPad};
  CHECK(tok->decode(framed) == "Gr");
  check_specials(*tok);
  check_reloads(*tok, {"Größe", "cab\n"});
}

TEST_CASE("char tokenizer keeps a stray byte as a unit of its own", "[data][tokenizer]") {
  std::string bad = "a\xFF" "b\xC3";  // 0xFF is never UTF-8; 0xC3 lacks its continuation
  auto tok = train_char_tokenizer({bad});
  CHECK(tok->vocab_size() == 4 + 4);
  CHECK(tok->decode(tok->encode(bad)) == bad);
  CHECK(tok->token(tok->encode("\xFF")[0]) == "<0xFF>");
  check_reloads(*tok, {bad});
}

TEST_CASE("word tokenizer uses 13a words, min_count and max_vocab", "[data][tokenizer]") {
  std::vector<std::string> texts = {"The dog runs.", "The dog sleeps.", "A cat runs!", "The end."};
  auto tok = train_word_tokenizer(texts, 2);
  CHECK(tok->kind() == "word");
  // Counts: The 3, dog 2, . 3, runs 2; others once. Most frequent first, ties in order of appearance.
  CHECK(tok->vocab_size() == 4 + 4);
  CHECK(tok->token(4) == "The");
  CHECK(tok->token(5) == ".");
  CHECK(tok->token(6) == "dog");
  CHECK(tok->token(7) == "runs");
  Ids ids = tok->encode("The cat runs.");
  CHECK(ids == Ids{4, kUnk, 7, 5});
  CHECK(tok->decode(ids) == "The <unk> runs .");
  CHECK(tok->decode(tok->encode("The dog runs.")) == "The dog runs .");

  auto capped = train_word_tokenizer(texts, 1, 6);
  CHECK(capped->vocab_size() == 6);
  CHECK(capped->encode("dog") == Ids{kUnk});
  check_specials(*tok);
  check_reloads(*tok, texts);
  REQUIRE_THROWS_WITH(train_word_tokenizer(texts, 0), Contains("min_count must be >= 1"));
  REQUIRE_THROWS_WITH(train_word_tokenizer(texts, 1, 3), Contains("max_vocab must be 0"));
}

TEST_CASE("BPE round-trips arbitrary bytes and learns up to vocab_size", "[data][tokenizer]") {
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("the theme of these three theses is there, then.");
  auto tok = train_bpe_tokenizer(texts, 300);
  CHECK(tok->kind() == "bpe");
  CHECK(tok->vocab_size() <= 300);
  CHECK(tok->vocab_size() > 260);
  // Learned merges make the training text shorter than its bytes.
  Ids ids = tok->encode(texts[0]);
  CHECK(ids.size() < texts[0].size() / 3);
  CHECK(tok->decode(ids) == texts[0]);
  // Merges stay inside a piece: " the" is one token with its leading space.
  Ids the = tok->encode(" the");
  CHECK(the.size() == 1);
  CHECK(tok->token(the[0]) == "\xE2\x96\x81the");

  // Every byte value, odd whitespace and UTF-8 all come back exactly.
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  for (const std::string& s : {all_bytes, std::string("  two  spaces\t\ttabs\n\nthe end  "), std::string("Größe ’x’"),
                               std::string("the"), std::string(" "), std::string()}) {
    Ids enc = tok->encode(s);
    for (int64_t id : enc) CHECK((id >= 4 && id < tok->vocab_size()));  // never unknown, never special
    CHECK(tok->decode(enc) == s);
  }
  CHECK(tok->encode(all_bytes).size() == 256);  // these bytes have no merges together
  // Training stops early when no pair occurs twice.
  CHECK(train_bpe_tokenizer({"ab"}, 1000)->vocab_size() == 260);
  check_specials(*tok);
  check_reloads(*tok, {texts[0], all_bytes});
  REQUIRE_THROWS_WITH(train_bpe_tokenizer(texts, 100), Contains("vocab_size must be at least 260"));
}

TEST_CASE("BPE-dropout draws segmentations that decode to the text", "[data][tokenizer]") {
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("the theme of these three theses is there, then.");
  auto tok = train_bpe_tokenizer(texts, 300);
  const std::string text = "these three themes, then the thesis. Größe";
  // dropout 0 is the deterministic encoding, whatever the seed.
  for (uint64_t seed : {0u, 1u, 99u}) CHECK(tok->encode_sampled(text, 0.0, seed) == tok->encode(text));
  // dropout 1 applies no merge: one id per byte.
  Ids bytes = tok->encode_sampled(text, 1.0, 5);
  CHECK(bytes.size() == text.size());
  CHECK(tok->decode(bytes) == text);
  // In between: the same seed gives the same pieces; seeds differ; every
  // draw decodes to the text, and is never shorter than the encoding
  // (merges are only ever left out).
  const Ids plain = tok->encode(text);
  CHECK(tok->encode_sampled(text, 0.3, 7) == tok->encode_sampled(text, 0.3, 7));
  std::map<Ids, int> seen;
  size_t longer = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Ids ids = tok->encode_sampled(text, 0.1, seed);
    CHECK(tok->decode(ids) == text);
    CHECK(ids.size() >= plain.size());
    longer += ids.size() > plain.size();
    ++seen[ids];
  }
  CHECK(seen.size() > 20);  // many segmentations are drawn...
  CHECK(seen.count(plain) == 1);  // ...the usual one among them
  CHECK(longer > 100);  // with 0.1 per pair and step, most draws of this text split a word somewhere
  // Dropout is per occurrence: in "aaaa" (merges aa, then aaaa) a step may
  // merge one "aa" and leave the other, which merging every occurrence of
  // the chosen pair never does.
  auto runs = train_bpe_tokenizer({"aaaa", "aaaa", "aaaa"}, 262);
  const int64_t a = 4 + 'a', aa = 260;
  REQUIRE(runs->encode("aaaa") == Ids{aa + 1});
  bool half_merged = false;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    Ids ids = runs->encode_sampled("aaaa", 0.3, seed);
    half_merged |= ids == Ids{aa, a, a} || ids == Ids{a, aa, a} || ids == Ids{a, a, aa};
  }
  CHECK(half_merged);
  // Every draw is made of tokens the model knows.
  for (int64_t id : tok->encode_sampled(text, 0.5, 3)) CHECK((id >= 4 && id < tok->vocab_size()));
  REQUIRE_THROWS_WITH(tok->encode_sampled(text, 1.5, 0), Contains("dropout must be in [0, 1]"));
  // The other kinds have one segmentation: dropout 0 is encode, anything else an error.
  auto words = train_word_tokenizer(texts);
  CHECK(words->encode_sampled(text, 0.0, 1) == words->encode(text));
  REQUIRE_THROWS_WITH(words->encode_sampled(text, 0.1, 1), Contains("subword dropout needs a bpe tokenizer"));
}

TEST_CASE("BPE training is deterministic", "[data][tokenizer]") {
  std::vector<std::string> texts = {"low lower lowest newer wider", "new newest widest low low"};
  CHECK(train_bpe_tokenizer(texts, 280)->serialize() == train_bpe_tokenizer(texts, 280)->serialize());
}

TEST_CASE("deserialize_tokenizer names what is wrong in a blob", "[data][tokenizer]") {
  struct Bad {
    const char* kind;
    const char* blob;
    const char* message;  // what the error must contain
  };
  const std::vector<Bad> bad = {
      {"sentencepiece", "", "unknown kind 'sentencepiece'"},
      {"char", "", "the char blob is empty"},
      {"char", "heed-tokenizer word 1\ntokens 0\n", "line 1 should be 'heed-tokenizer char 1'"},
      {"char", "heed-tokenizer char 1\n", "ends after its header"},
      {"char", "heed-tokenizer char 1\ntokens x\n", "expected a number"},
      {"char", "heed-tokenizer char 1\ntokens 3\na\nb\n", "announces 3 tokens but holds 2"},
      {"char", "heed-tokenizer char 1\ntokens 1\nab\n", "line 3: 'ab' is not one character"},
      {"word", "heed-tokenizer word 1\ntokens 2\ndog\ndog\n", "'dog' appears twice"},
      {"word", "heed-tokenizer word 1\ntokens 1\nbad\\q\n", "unknown escape"},
      {"bpe", "heed-tokenizer bpe 1\nmerges 1\n4\n", "line 3: expected '<id> <id>'"},
      {"bpe", "heed-tokenizer bpe 1\nmerges 1\n4 260\n", "only ids 4..259 exist before it"},
      {"bpe", "heed-tokenizer bpe 1\nmerges 2\n4 5\n4 5\n", "repeats an earlier merge"},
  };
  for (const Bad& b : bad) {
    INFO(b.kind << " blob \"" << b.blob << "\"");
    REQUIRE_THROWS_WITH(deserialize_tokenizer(b.kind, b.blob), Contains(b.message));
  }
  // A newline inside a char token survives the trip through the line format.
  auto tok = train_char_tokenizer({"a\nb\\"});
  CHECK(deserialize_tokenizer("char", tok->serialize())->decode(tok->encode("b\n\\a")) == "b\n\\a");
}
