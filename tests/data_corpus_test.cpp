// Corpus readers (Ding, TSV, lines), the seeded split and the synthetic tasks.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/corpus.h"
#include "tensor/error.h"

using namespace heed::data;
using Catch::Contains;

namespace {
// A file under the temp folder, written by the test and removed afterwards.
struct TempFile {
  std::string path;
  TempFile(const std::string& name, const std::string& contents)
      : path((std::filesystem::temp_directory_path() / ("heed_data_test_" + name)).string()) {
    std::ofstream(path, std::ios::binary) << contents;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

bool has_pair(const std::vector<SentencePair>& pairs, const std::string& src, const std::string& tgt) {
  for (const auto& p : pairs)
    if (p.src == src && p.tgt == tgt) return true;
  return false;
}
}  // namespace

TEST_CASE("read_ding_pairs parses entries, alternatives and labels", "[data][corpus]") {
  TempFile ding("ding.txt",
                "# Version :: 1.9\n"
                "# Copyright (c) :: Frank Richter\n"
                "Hund {m} | Das ist mein Hund. [ugs.] :: dog | That is my dog.\n"
                "Katze {f} | Die Katze schläft gern. {f} | Wo ist die Katze? :: cat | The cat likes sleeping. | "
                "Where is the cat [Br.]?\n"
                "kurz | Zu kurz. :: short | Too short.\n"
                "ohne Trenner hier. Das ist eine Zeile.\n"
                "eins | Das sind zwei Sätze hier. :: one\n"
                "Er hat abgemacht [Ös.] und bleibt. :: He has agreed [Br.] and stays.\n"
                "Das ist mein Hund. :: That is my dog.\n"
                "Ich habe es gesehen, wirklich! :: I’ve seen it, really!\n"
                "Es ist nicht zu Ende. :: It is not over yet\n"
                "\n");
  std::vector<SentencePair> pairs = read_ding_pairs(ding.path);
  // Kept: the dog sentence (label stripped, once despite the duplicate line),
  // the sleeping cat, the cat question (its label sits before the '?'), the
  // inner-label line and the apostrophe line. Dropped: comments, short
  // alternatives, a line without " :: ", a line whose sides have different
  // counts, and an English side without an end mark.
  REQUIRE(pairs.size() == 5);
  CHECK(pairs[0].src == "Das ist mein Hund.");
  CHECK(pairs[0].tgt == "That is my dog.");
  CHECK(has_pair(pairs, "Die Katze schläft gern.", "The cat likes sleeping."));
  CHECK(has_pair(pairs, "Wo ist die Katze?", "Where is the cat?"));
  CHECK(has_pair(pairs, "Er hat abgemacht und bleibt.", "He has agreed and stays."));
  CHECK(has_pair(pairs, "Ich habe es gesehen, wirklich!", "I've seen it, really!"));

  DingOptions raw;
  raw.strip_inner_labels = false;
  raw.plain_apostrophes = false;
  std::vector<SentencePair> kept = read_ding_pairs(ding.path, raw);
  CHECK(has_pair(kept, "Er hat abgemacht [Ös.] und bleibt.", "He has agreed [Br.] and stays."));
  CHECK(has_pair(kept, "Ich habe es gesehen, wirklich!", "I’ve seen it, really!"));

  DingOptions longer;
  longer.min_words = 5;
  CHECK(read_ding_pairs(ding.path, longer).size() == 1);  // words are counted before inner labels go
  DingOptions capped;
  capped.max_words = 4;
  CHECK(read_ding_pairs(ding.path, capped).size() == 2);  // the dog and the sleeping cat

  REQUIRE_THROWS_WITH(read_ding_pairs("/nonexistent/de-en"), Contains("read_ding_pairs: cannot open '/nonexistent/de-en'"));
  DingOptions bad;
  bad.min_words = 0;
  REQUIRE_THROWS_WITH(read_ding_pairs(ding.path, bad), Contains("min_words must be >= 1"));
}

TEST_CASE("read_ding_phrases keeps words and phrases, none from a held-out entry", "[data][corpus]") {
  TempFile ding("ding_phrases.txt",
                "# Version :: 1.9\n"
                "Hund {m} | Das ist mein Hund. [ugs.] :: dog | That is my dog.\n"
                "Katze {f} | Wo ist die Katze? :: cat | Where is the cat?\n"
                "Abholort {m}; Abholstelle {f} :: collection location; pickup location\n"
                "kurz | Zu kurz. :: short | Too short.\n"
                "Hund {m} :: dog\n"
                "eins | zwei :: one\n"
                "sich etw. ansehen [ugs.] :: to have a look at sth. {v}\n"
                "Es ist nicht zu Ende. :: It is not over yet\n");
  const std::vector<SentencePair> held_out{{"Wo ist die Katze?", "Where is the cat?"}, {"Zu kurz.", "Too short."}};
  std::vector<SentencePair> phrases = read_ding_phrases(ding.path, held_out);
  // Kept: each entry's headword (first synonym, labels gone, once despite the
  // repeated Hund line) and an alternative that is no sentence (its English
  // side has no end mark). Dropped: the sentences themselves, the whole Katze
  // line (it holds a held-out sentence), a phrase equal to a held-out side
  // ("Zu kurz."), a line whose sides have different counts, comments.
  CHECK(has_pair(phrases, "Hund", "dog"));
  CHECK(has_pair(phrases, "Abholort", "collection location"));
  CHECK(has_pair(phrases, "kurz", "short"));
  CHECK(has_pair(phrases, "sich etw. ansehen", "to have a look at sth."));
  CHECK(has_pair(phrases, "Es ist nicht zu Ende.", "It is not over yet"));
  CHECK(phrases.size() == 5);
  CHECK_FALSE(has_pair(phrases, "Katze", "cat"));
  CHECK_FALSE(has_pair(phrases, "Zu kurz.", "Too short."));

  std::vector<SentencePair> all = read_ding_phrases(ding.path, {});
  CHECK(has_pair(all, "Katze", "cat"));
  CHECK(has_pair(all, "Zu kurz.", "Too short."));
  CHECK(all.size() == 7);
  for (const auto& p : all) CHECK_FALSE(has_pair(read_ding_pairs(ding.path), p.src, p.tgt));

  REQUIRE_THROWS_WITH(read_ding_phrases("/nonexistent/de-en", {}),
                      Contains("read_ding_phrases: cannot open '/nonexistent/de-en'"));
  DingOptions bad;
  bad.max_words = 0;
  bad.min_words = -1;
  REQUIRE_THROWS_WITH(read_ding_phrases(ding.path, {}, bad), Contains("read_ding_phrases: min_words must be >= 1"));
}

TEST_CASE("read_ding_pairs on Debian's trans-de-en gives about 18,750 pairs", "[data][corpus]") {
  const std::string path = "/usr/share/trans/de-en";
  if (!std::filesystem::exists(path)) {
    WARN("[skip] " << path << " is missing (apt-get install trans-de-en)");
    return;
  }
  std::vector<SentencePair> pairs = read_ding_pairs(path);
  CHECK(pairs.size() > 18000);
  CHECK(pairs.size() < 19500);
  std::set<std::string> sources;
  for (const auto& p : pairs) {
    sources.insert(p.src);
    CHECK(p.tgt.find('[') == std::string::npos);
    CHECK(p.tgt.find("\xE2\x80\x99") == std::string::npos);
  }
  CHECK(sources.size() < pairs.size());  // some German sentences have several translations
  DingOptions short_only;
  short_only.max_words = 8;
  CHECK(read_ding_pairs(path, short_only).size() < pairs.size());
}

TEST_CASE("read_tsv_pairs and read_lines read files and name bad lines", "[data][corpus]") {
  TempFile good("good.tsv", "Hallo Welt.\tHello world.\r\n\nJa.\tYes.\n");
  std::vector<SentencePair> pairs = read_tsv_pairs(good.path);
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].src == "Hallo Welt.");
  CHECK(pairs[0].tgt == "Hello world.");
  CHECK(pairs[1].tgt == "Yes.");

  TempFile no_tab("no_tab.tsv", "a\tb\nno tab here\n");
  REQUIRE_THROWS_WITH(read_tsv_pairs(no_tab.path), Contains("line 2: no tab between source and target"));
  TempFile two_tabs("two_tabs.tsv", "a\tb\tc\n");
  REQUIRE_THROWS_WITH(read_tsv_pairs(two_tabs.path), Contains("line 1: more than one tab"));
  REQUIRE_THROWS_WITH(read_tsv_pairs("/nonexistent.tsv"), Contains("cannot open '/nonexistent.tsv'"));

  TempFile lines("lines.txt", "first\r\nsecond\n\nfourth");
  CHECK(read_lines(lines.path) == std::vector<std::string>{"first", "second", "", "fourth"});
  REQUIRE_THROWS_WITH(read_lines("/nonexistent/kjv.txt"), Contains("read_lines: cannot open '/nonexistent/kjv.txt'"));
}

TEST_CASE("split_pairs is seeded and keeps a source in one split", "[data][corpus]") {
  std::vector<SentencePair> pairs;
  for (int i = 0; i < 200; ++i) {
    pairs.push_back({"src " + std::to_string(i), "tgt " + std::to_string(i)});
    if (i % 10 == 0) pairs.push_back({"src " + std::to_string(i), "other tgt " + std::to_string(i)});
  }
  PairSplits a = split_pairs(pairs, 0.1, 0.1, 7), b = split_pairs(pairs, 0.1, 0.1, 7), c = split_pairs(pairs, 0.1, 0.1, 8);
  CHECK(a.train.size() + a.valid.size() + a.test.size() == pairs.size());
  CHECK(a.test.size() >= 22);  // round(0.1 * 220), reached with whole groups
  CHECK(a.test.size() <= 23);
  CHECK(a.valid.size() >= 22);
  CHECK(a.valid.size() <= 23);
  auto srcs = [](const std::vector<SentencePair>& v) {
    std::vector<std::string> s;
    for (const auto& p : v) s.push_back(p.src);
    return s;
  };
  CHECK(srcs(a.train) == srcs(b.train));
  CHECK(srcs(a.test) == srcs(b.test));
  CHECK(srcs(a.test) != srcs(c.test));
  std::set<std::string> train, valid, test;
  for (const auto& s : srcs(a.train)) train.insert(s);
  for (const auto& s : srcs(a.valid)) valid.insert(s);
  for (const auto& s : srcs(a.test)) test.insert(s);
  for (const auto& s : test) {
    CHECK(train.count(s) == 0);
    CHECK(valid.count(s) == 0);
  }
  for (const auto& s : valid) CHECK(train.count(s) == 0);

  PairSplits all_train = split_pairs(pairs, 0, 0, 1);
  CHECK(all_train.train.size() == pairs.size());
  REQUIRE_THROWS_WITH(split_pairs(pairs, 0.6, 0.5, 1), Contains("split_pairs: fractions must be >= 0 and sum to at most 1"));
}

TEST_CASE("split_joined_sentences splits '; ' after a sentence, and nowhere else", "[data][corpus]") {
  using V = std::vector<std::string>;
  CHECK(split_joined_sentences("Er kam.; Er ist gekommen!") == V{"Er kam.", "Er ist gekommen!"});
  CHECK(split_joined_sentences("Kommst du?;  Bist du da?; Ja, sicher.") == V{"Kommst du?", "Bist du da?", "Ja, sicher."});
  CHECK(split_joined_sentences("Ein Satz ohne Fuge.") == V{"Ein Satz ohne Fuge."});
  // Not after a sentence: a list inside one, an abbreviation of one word.
  CHECK(split_joined_sentences("Rot; Blau und Gelb sind Farben.") == V{"Rot; Blau und Gelb sind Farben."});
  CHECK(split_joined_sentences("Er kam usw.; dann ging er.") == V{"Er kam usw.", "dann ging er."});
  CHECK(split_joined_sentences("bzw.; dann ging er.") == V{"bzw.; dann ging er."});
  CHECK(split_joined_sentences("") == V{""});
  CHECK(split_joined_sentences("Er kam.; ") == V{"Er kam."});
}

TEST_CASE("split_joined_pairs pairs joined sentences by position, none from held-out sentences", "[data][corpus]") {
  const std::vector<SentencePair> held_out = {{"Ich bin hier.; Da bin ich.", "I am here.; Here I am."}};
  const std::vector<SentencePair> train = {
      {"Er kam.; Er ist gekommen.", "He came.; He has come."},  // 2 and 2: by position
      {"Sie lacht laut.", "She laughs loudly.; She is laughing loudly."},  // 1 and 2: the one with each
      {"A b c.; D e f.; G h i.", "X y z.; U v w."},                       // 3 and 2: whole
      {"Ein Satz hier.", "One sentence here."},                            // whole
      {"Ich bin hier.; Wir sind da.", "I am here now.; We are there."},  // "Ich bin hier." is held out
      {"Er kam.", "He came."},                                             // a duplicate of a part, once
  };
  const std::vector<SentencePair> out = split_joined_pairs(train, held_out);
  CHECK(has_pair(out, "Er kam.", "He came."));
  CHECK(has_pair(out, "Er ist gekommen.", "He has come."));
  CHECK_FALSE(has_pair(out, "Er kam.", "He has come."));
  CHECK(has_pair(out, "Sie lacht laut.", "She laughs loudly."));
  CHECK(has_pair(out, "Sie lacht laut.", "She is laughing loudly."));
  CHECK(has_pair(out, "A b c.; D e f.; G h i.", "X y z.; U v w."));
  CHECK(has_pair(out, "Ein Satz hier.", "One sentence here."));
  CHECK(has_pair(out, "Wir sind da.", "We are there."));
  CHECK_FALSE(has_pair(out, "Ich bin hier.", "I am here now."));
  CHECK(out.size() == 7);
  // Order: the parts in place of their pair.
  CHECK(out[0].src == "Er kam.");
  CHECK(out[1].src == "Er ist gekommen.");
  CHECK(out[2].tgt == "She laughs loudly.");
}

TEST_CASE("make_synthetic_pairs makes copy, reverse and sort tasks", "[data][corpus]") {
  CHECK(synthetic_symbol(0) == "a");
  CHECK(synthetic_symbol(25) == "z");
  CHECK(synthetic_symbol(26) == "aa");
  CHECK(synthetic_symbol(27) == "ab");
  CHECK(synthetic_symbol(26 + 26 * 26) == "aaa");

  auto copy = make_synthetic_pairs(SyntheticTask::Copy, 100, 2, 5, 10, 3);
  REQUIRE(copy.size() == 100);
  std::set<size_t> lengths;
  for (const auto& p : copy) {
    CHECK(p.src == p.tgt);
    size_t words = std::count(p.src.begin(), p.src.end(), ' ') + 1;
    CHECK(words >= 2);
    CHECK(words <= 5);
    lengths.insert(words);
    for (char ch : p.src) CHECK((ch == ' ' || (ch >= 'a' && ch <= 'j')));
  }
  CHECK(lengths.size() == 4);  // every length in [2, 5] shows up
  CHECK(make_synthetic_pairs(SyntheticTask::Copy, 100, 2, 5, 10, 3)[17].src == copy[17].src);
  CHECK(make_synthetic_pairs(SyntheticTask::Copy, 100, 2, 5, 10, 4)[17].src != copy[17].src);

  auto rev = make_synthetic_pairs(SyntheticTask::Reverse, 1, 4, 4, 26, 1)[0];
  std::string backwards(rev.src.rbegin(), rev.src.rend());  // one-letter symbols: reversing the string reverses them
  CHECK(rev.tgt == backwards);
  auto sorted = make_synthetic_pairs(SyntheticTask::Sort, 20, 3, 8, 40, 2);
  for (const auto& p : sorted) {
    CHECK(p.src.size() == p.tgt.size());
    std::vector<std::string> words;
    size_t start = 0;
    for (size_t sp = p.tgt.find(' '); ; sp = p.tgt.find(' ', start)) {
      words.push_back(p.tgt.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
      if (sp == std::string::npos) break;
      start = sp + 1;
    }
    for (size_t i = 1; i < words.size(); ++i) {
      // Sorted by symbol index: shorter names come later in the index order only if longer.
      bool ordered = words[i - 1].size() < words[i].size() || (words[i - 1].size() == words[i].size() && words[i - 1] <= words[i]);
      CHECK(ordered);
    }
  }
  REQUIRE_THROWS_WITH(make_synthetic_pairs(SyntheticTask::Copy, 1, 3, 2, 5, 0), Contains("need 1 <= min_len <= max_len"));
  REQUIRE_THROWS_WITH(make_synthetic_pairs(SyntheticTask::Copy, 1, 1, 2, 0, 0), Contains("num_symbols must be >= 1"));
}
