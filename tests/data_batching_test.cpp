// Translation and language-model batchers: layout, masks, token budget,
// coverage of an epoch, determinism, exact resume, and the parts of a batch
// that data-parallel ranks take.
#include <catch2/catch.hpp>

#include <map>

#include "data/batching.h"
#include "data/tokenizer.h"
#include "tensor/error.h"
#include "tensor/ops.h"

using namespace heed;
using namespace heed::data;
using Catch::Contains;
using Ids = std::vector<int64_t>;

namespace {
// Example i: source of 1 + i % 7 tokens, target of 1 + (i * 3) % 11, with
// token values that say which example and position they come from.
std::vector<EncodedPair> make_examples(int64_t n) {
  std::vector<EncodedPair> ex;
  for (int64_t i = 0; i < n; ++i) {
    EncodedPair p;
    for (int64_t k = 0; k < 1 + i % 7; ++k) p.src.push_back(4 + (i * 13 + k) % 50);
    for (int64_t k = 0; k < 1 + (i * 3) % 11; ++k) p.tgt.push_back(4 + (i * 7 + k) % 50);
    ex.push_back(p);
  }
  return ex;
}

// Row b of a [B, L] int64/bool tensor.
template <class T>
std::vector<T> row(const Tensor& t, int64_t b) {
  std::vector<T> all = t.to_vector<T>();
  return std::vector<T>(all.begin() + b * t.size(1), all.begin() + (b + 1) * t.size(1));
}

void check_batch_layout(const TranslationBatch& batch, const std::vector<EncodedPair>& ex) {
  const int64_t B = batch.src.size(0), S = batch.src.size(1), T = batch.tgt_in.size(1);
  REQUIRE(batch.src.dtype() == DType::Int64);
  REQUIRE(batch.src_pad.dtype() == DType::Bool);
  REQUIRE(batch.tgt_in.shape() == Shape{B, T});
  REQUIRE(batch.tgt_out.shape() == Shape{B, T});
  REQUIRE(batch.src_pad.shape() == Shape{B, S});
  REQUIRE(batch.tgt_pad.shape() == Shape{B, T});
  REQUIRE(static_cast<int64_t>(batch.indices.size()) == B);
  int64_t tgt_tokens = 0;
  for (int64_t b = 0; b < B; ++b) {
    const EncodedPair& e = ex[batch.indices[b]];
    Ids src = row<int64_t>(batch.src, b), tin = row<int64_t>(batch.tgt_in, b), tout = row<int64_t>(batch.tgt_out, b);
    std::vector<bool> spad = row<bool>(batch.src_pad, b), tpad = row<bool>(batch.tgt_pad, b);
    const auto n = static_cast<int64_t>(e.src.size()), m = static_cast<int64_t>(e.tgt.size());
    for (int64_t k = 0; k < S; ++k) {
      int64_t want = k < n ? e.src[k] : k == n ? kEos : kPad;
      CHECK(src[k] == want);
      CHECK(spad[k] == (k > n));
    }
    for (int64_t k = 0; k < T; ++k) {
      CHECK(tin[k] == (k == 0 ? kBos : k <= m ? e.tgt[k - 1] : kPad));
      CHECK(tout[k] == (k < m ? e.tgt[k] : k == m ? kEos : kPad));
      CHECK(tpad[k] == (k > m));
    }
    tgt_tokens += m + 1;
  }
  CHECK(batch.num_tgt_tokens == tgt_tokens);
}
}  // namespace

TEST_CASE("TranslationBatcher lays out tokens, EOS, BOS, PAD and masks", "[data][batching]") {
  std::vector<EncodedPair> ex = make_examples(40);
  TranslationBatcher batcher(ex, 64, 1);
  for (int i = 0; i < batcher.batches_per_epoch(); ++i) check_batch_layout(batcher.next(), ex);
  for (const TranslationBatch& b : batcher.all_batches()) check_batch_layout(b, ex);
}

TEST_CASE("TranslationBatcher respects max_tokens and covers each example once per epoch", "[data][batching]") {
  std::vector<EncodedPair> ex = make_examples(300);
  for (int64_t max_tokens : {32, 100, 500}) {
    TranslationBatcher batcher(ex, max_tokens, 5);
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::map<int64_t, int> seen;
      for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) {
        CHECK(batcher.epoch() == epoch);
        TranslationBatch b = batcher.next();
        CHECK(b.src.numel() + b.tgt_in.numel() <= max_tokens);
        for (int64_t idx : b.indices) ++seen[idx];
      }
      CHECK(seen.size() == ex.size());
      for (const auto& [idx, count] : seen) CHECK(count == 1);
    }
    CHECK(batcher.epoch() == 2);
    CHECK(batcher.position() == 2 * batcher.batches_per_epoch());
  }
  // Bucketing keeps padding small: under a third of the padded cells.
  TranslationBatcher batcher(ex, 200, 5);
  int64_t cells = 0, pads = 0;
  for (int64_t i = 0; i < batcher.batches_per_epoch(); ++i) {
    TranslationBatch b = batcher.next();
    cells += b.src.numel() + b.tgt_pad.numel();
    pads += sum(to_dtype(b.src_pad, DType::Int64)).item<int64_t>() + sum(to_dtype(b.tgt_pad, DType::Int64)).item<int64_t>();
  }
  CHECK(pads * 3 < cells);
}

TEST_CASE("TranslationBatcher is deterministic, reshuffles each epoch and resumes exactly", "[data][batching]") {
  std::vector<EncodedPair> ex = make_examples(200);
  TranslationBatcher a(ex, 80, 11), b(ex, 80, 11), other(ex, 80, 12);
  const int64_t n = a.batches_per_epoch();
  std::vector<Ids> first_epoch, second_epoch;
  bool differs_from_other_seed = false;
  for (int64_t i = 0; i < n; ++i) {
    TranslationBatch x = a.next(), y = b.next(), z = other.next();
    CHECK(x.indices == y.indices);
    CHECK(x.src.to_vector<int64_t>() == y.src.to_vector<int64_t>());
    differs_from_other_seed |= x.indices != z.indices;
    first_epoch.push_back(x.indices);
  }
  CHECK(differs_from_other_seed);
  for (int64_t i = 0; i < n; ++i) second_epoch.push_back(a.next().indices);
  CHECK(first_epoch != second_epoch);  // the batch order is reshuffled

  // Resume at every position of the first two and a half epochs.
  TranslationBatcher reference(ex, 80, 11);
  std::vector<Ids> stream;
  for (int64_t i = 0; i < 5 * n / 2; ++i) stream.push_back(reference.next().indices);
  for (int64_t p : {int64_t{0}, int64_t{1}, n - 1, n, n + 3, 2 * n + 1}) {
    TranslationBatcher resumed(ex, 80, 11);
    resumed.set_position(p);
    CHECK(resumed.position() == p);
    CHECK(resumed.epoch() == p / n);
    CHECK(resumed.next().indices == stream[p]);
    CHECK(resumed.next().indices == stream[p + 1]);
  }
  // Going back works as well.
  reference.set_position(1);
  CHECK(reference.next().indices == stream[1]);
  REQUIRE_THROWS_WITH(reference.set_position(-1), Contains("set_position: position must be >= 0"));
}

TEST_CASE("TranslationBatcher resamples rows per epoch and resumes exactly", "[data][batching]") {
  std::vector<EncodedPair> ex = make_examples(120);
  // A stand-in for BPE-dropout: example i in epoch e gets e + (i % 3) extra
  // tokens at the end of its source and one at the end of its target.
  auto resample = [&](int64_t i, int64_t e) {
    EncodedPair p = ex[i];
    for (int64_t k = 0; k < e + i % 3; ++k) p.src.push_back(1000 + e);
    p.tgt.push_back(2000 + e);
    return p;
  };
  const int64_t max_len = 12;
  auto make = [&] {
    TranslationBatcher b(ex, 80, 3, true, max_len);
    b.set_resample(resample);
    return b;
  };
  TranslationBatcher plain(ex, 80, 3, true, max_len), sampled = make();
  const int64_t n = sampled.batches_per_epoch();
  CHECK(n == plain.batches_per_epoch());  // packed by the given lengths
  std::vector<TranslationBatch> stream;
  for (int64_t i = 0; i < 3 * n; ++i) {
    TranslationBatch x = plain.next(), y = sampled.next();
    CHECK(x.indices == y.indices);  // same rows, same order
    const int64_t epoch = i / n;
    std::vector<EncodedPair> want = ex;
    for (int64_t r : y.indices) {
      EncodedPair e = resample(r, epoch);
      // Too long for max_len: the given example instead.
      if (static_cast<int64_t>(e.src.size()) + 1 <= max_len && static_cast<int64_t>(e.tgt.size()) + 1 <= max_len)
        want[r] = e;
    }
    check_batch_layout(y, want);
    stream.push_back(y);
  }
  // The all_batches pass (validation) is never resampled.
  for (const TranslationBatch& b : sampled.all_batches()) check_batch_layout(b, ex);
  // Resumed anywhere, the rows are those of the uninterrupted stream.
  for (int64_t p : {int64_t{0}, n - 1, n, 2 * n + 1}) {
    TranslationBatcher resumed = make();
    resumed.set_position(p);
    TranslationBatch y = resumed.next();
    CHECK(y.indices == stream[p].indices);
    CHECK(y.src.to_vector<int64_t>() == stream[p].src.to_vector<int64_t>());
    CHECK(y.tgt_out.to_vector<int64_t>() == stream[p].tgt_out.to_vector<int64_t>());
  }
}

TEST_CASE("TranslationBatcher without shuffle and with max_len", "[data][batching]") {
  std::vector<EncodedPair> ex = make_examples(50);
  TranslationBatcher fixed(ex, 60, 3, /*shuffle=*/false);
  std::vector<TranslationBatch> all = fixed.all_batches();
  REQUIRE(static_cast<int64_t>(all.size()) == fixed.batches_per_epoch());
  for (int epoch = 0; epoch < 2; ++epoch)
    for (const TranslationBatch& want : all) CHECK(fixed.next().indices == want.indices);

  // max_len 5 keeps examples with src + EOS <= 5 and BOS + tgt <= 5.
  TranslationBatcher short_only(ex, 60, 3, true, 5);
  int64_t expected = 0;
  for (const auto& e : ex) expected += (e.src.size() + 1 <= 5 && e.tgt.size() + 1 <= 5);
  CHECK(short_only.num_examples() == expected);
  CHECK(short_only.num_dropped() == 50 - expected);
  for (const TranslationBatch& b : short_only.all_batches()) {
    CHECK(b.src.size(1) <= 5);
    CHECK(b.tgt_in.size(1) <= 5);
  }

  // An example too long for the budget alone gets a batch of its own.
  std::vector<EncodedPair> big = {{Ids(30, 5), Ids(30, 6)}, {Ids{5}, Ids{6}}};
  TranslationBatcher alone(big, 16, 0);
  CHECK(alone.batches_per_epoch() == 2);

  REQUIRE_THROWS_WITH(TranslationBatcher(ex, 0, 1), Contains("max_tokens must be > 0"));
  REQUIRE_THROWS_WITH(TranslationBatcher(ex, 60, 1, true, 1), Contains("no examples to batch (50 given, 50 longer"));
  REQUIRE_THROWS_WITH(TranslationBatcher({}, 60, 1), Contains("no examples to batch"));
}

TEST_CASE("LMBatcher draws windows as a pure function of (seed, position)", "[data][batching]") {
  Ids ids(1000);
  for (int64_t i = 0; i < 1000; ++i) ids[i] = i;  // a token's value is its position
  LMBatcher lm(ids, 4, 16, 9);
  std::vector<Ids> stream;
  for (int i = 0; i < 10; ++i) {
    LMBatch b = lm.next();
    REQUIRE(b.x.shape() == Shape{4, 16});
    REQUIRE(b.y.shape() == Shape{4, 16});
    Ids x = b.x.to_vector<int64_t>(), y = b.y.to_vector<int64_t>();
    for (size_t k = 0; k < x.size(); ++k) CHECK(y[k] == x[k] + 1);  // y is x shifted by one
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t k = 1; k < 16; ++k) CHECK(x[r * 16 + k] == x[r * 16] + k);  // a contiguous window
    stream.push_back(x);
  }
  CHECK(lm.position() == 10);
  CHECK(stream[0] != stream[1]);
  LMBatcher resumed(ids, 4, 16, 9);
  resumed.set_position(7);
  CHECK(resumed.next().x.to_vector<int64_t>() == stream[7]);
  CHECK(LMBatcher(ids, 4, 16, 10).next().x.to_vector<int64_t>() != stream[0]);

  // The last window may end at the last token.
  Ids tiny = {0, 1, 2, 3};
  LMBatcher edge(tiny, 2, 3, 0);
  CHECK(edge.next().y.to_vector<int64_t>() == Ids{1, 2, 3, 1, 2, 3});

  REQUIRE_THROWS_WITH(LMBatcher(tiny, 2, 4, 0), Contains("4 ids are too few for one window of block_size + 1 = 5"));
  REQUIRE_THROWS_WITH(LMBatcher(tiny, 0, 2, 0), Contains("batch_size and block_size must be > 0"));
}

TEST_CASE("LMBatcher::sequential_batches tiles the stream", "[data][batching]") {
  Ids ids(50);
  for (int64_t i = 0; i < 50; ++i) ids[i] = i;
  LMBatcher lm(ids, 3, 8, 0);
  std::vector<LMBatch> all = lm.sequential_batches();
  // (50 - 1) / 8 = 6 windows: two batches of 3.
  REQUIRE(all.size() == 2);
  CHECK(all[0].x.to_vector<int64_t>()[0] == 0);
  CHECK(all[0].x.to_vector<int64_t>()[8] == 8);
  CHECK(all[1].y.to_vector<int64_t>().back() == 48);
  CHECK(lm.sequential_batches(1).size() == 1);
  LMBatcher uneven(ids, 4, 8, 0);
  std::vector<LMBatch> parts = uneven.sequential_batches();
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].x.shape() == Shape{2, 8});  // the last batch holds the 2 windows left
}

namespace {
void check_same_batch(const TranslationBatch& got, const TranslationBatch& want) {
  CHECK(got.src.shape() == want.src.shape());
  CHECK(got.tgt_in.shape() == want.tgt_in.shape());
  CHECK(got.tgt_out.shape() == want.tgt_out.shape());
  CHECK(got.src_pad.shape() == want.src_pad.shape());
  CHECK(got.tgt_pad.shape() == want.tgt_pad.shape());
  CHECK(got.src.to_vector<int64_t>() == want.src.to_vector<int64_t>());
  CHECK(got.tgt_in.to_vector<int64_t>() == want.tgt_in.to_vector<int64_t>());
  CHECK(got.tgt_out.to_vector<int64_t>() == want.tgt_out.to_vector<int64_t>());
  CHECK(got.src_pad.to_vector<bool>() == want.src_pad.to_vector<bool>());
  CHECK(got.tgt_pad.to_vector<bool>() == want.tgt_pad.to_vector<bool>());
  CHECK(got.num_tgt_tokens == want.num_tgt_tokens);
  CHECK(got.indices == want.indices);
}

// The batch make_batch builds from the examples of a part's rows: a batcher
// over just those examples, unshuffled and with room for all of them, packs
// them into one batch in the same order (the rows of a packed batch are
// sorted by length already, and the sort is stable).
TranslationBatch made_from_rows(const TranslationBatch& part, const std::vector<EncodedPair>& ex) {
  std::vector<EncodedPair> rows;
  for (int64_t i : part.indices) rows.push_back(ex[i]);
  std::vector<TranslationBatch> all = TranslationBatcher(rows, int64_t{1} << 40, 0, /*shuffle=*/false).all_batches();
  REQUIRE(all.size() == 1);
  Ids in_order(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) in_order[i] = static_cast<int64_t>(i);
  REQUIRE(all[0].indices == in_order);
  all[0].indices = part.indices;  // back to indices into ex
  return all[0];
}
}  // namespace

TEST_CASE("take_part interleaves a TranslationBatch's rows and re-pads each part", "[data][batching]") {
  // Sorted by source length: rows (src 1, tgt 1), (src 2, tgt 4), (src 3, tgt 2).
  std::vector<EncodedPair> ex = {{Ids{11}, Ids{21}}, {Ids{12, 13, 14}, Ids{22, 23}}, {Ids{15, 16}, Ids{24, 25, 26, 27}}};
  TranslationBatch batch = TranslationBatcher(ex, 1000, 0, /*shuffle=*/false).next();
  REQUIRE(batch.indices == Ids{0, 2, 1});
  REQUIRE(batch.src.shape() == Shape{3, 4});
  REQUIRE(batch.tgt_in.shape() == Shape{3, 5});

  // Part 0 of 2: rows 0 and 2, one padding column fewer on the target side.
  TranslationBatch even = take_part(batch, 0, 2);
  CHECK(even.indices == Ids{0, 1});
  CHECK(even.src.to_vector<int64_t>() == Ids{11, kEos, kPad, kPad, 12, 13, 14, kEos});
  CHECK(even.src_pad.to_vector<bool>() == std::vector<bool>{false, false, true, true, false, false, false, false});
  CHECK(even.tgt_in.to_vector<int64_t>() == Ids{kBos, 21, kPad, kBos, 22, 23});
  CHECK(even.tgt_out.to_vector<int64_t>() == Ids{21, kEos, kPad, 22, 23, kEos});
  CHECK(even.tgt_pad.to_vector<bool>() == std::vector<bool>{false, false, true, false, false, false});
  CHECK(even.num_tgt_tokens == 2 + 3);
  // Part 1 of 2: row 1 alone, no padding left.
  TranslationBatch odd = take_part(batch, 1, 2);
  CHECK(odd.indices == Ids{2});
  CHECK(odd.src.to_vector<int64_t>() == Ids{15, 16, kEos});
  CHECK(odd.tgt_in.to_vector<int64_t>() == Ids{kBos, 24, 25, 26, 27});
  CHECK(odd.tgt_out.to_vector<int64_t>() == Ids{24, 25, 26, 27, kEos});
  CHECK(odd.src_pad.to_vector<bool>() == std::vector<bool>(3, false));
  CHECK(odd.tgt_pad.to_vector<bool>() == std::vector<bool>(5, false));
  CHECK(odd.num_tgt_tokens == 5);
}

TEST_CASE("take_part: the parts of a TranslationBatch hold every row once, as make_batch would", "[data][batching]") {
  std::vector<EncodedPair> ex = make_examples(300);
  TranslationBatcher batcher(ex, 400, 7);
  bool shrank = false;
  for (int step = 0; step < 6; ++step) {
    TranslationBatch batch = batcher.next();
    const int64_t B = batch.src.size(0);
    REQUIRE(B >= 4);  // so that parts 2 and 3 have rows to split

    check_same_batch(take_part(batch, 0, 1), batch);  // one part is the batch

    for (int64_t parts : {int64_t{2}, int64_t{3}, B - 1, B, B + 3}) {
      std::map<int64_t, int> seen;
      int64_t tokens = 0;
      for (int64_t p = 0; p < parts; ++p) {
        TranslationBatch part = take_part(batch, p, parts);
        const int64_t rows = part.src.size(0);
        CHECK(rows == (p < B ? (B - 1 - p) / parts + 1 : 0));
        REQUIRE(static_cast<int64_t>(part.indices.size()) == rows);
        for (int64_t i = 0; i < rows; ++i) CHECK(part.indices[i] == batch.indices[p + i * parts]);  // interleaved
        for (int64_t idx : part.indices) ++seen[idx];
        tokens += part.num_tgt_tokens;
        check_batch_layout(part, ex);
        if (rows == 0) {
          CHECK(part.src.shape() == Shape{0, 0});
          CHECK(part.tgt_in.shape() == Shape{0, 0});
          CHECK(part.tgt_out.shape() == Shape{0, 0});
          CHECK(part.src_pad.shape() == Shape{0, 0});
          CHECK(part.tgt_pad.shape() == Shape{0, 0});
          CHECK(part.num_tgt_tokens == 0);
          continue;
        }
        // Shapes shrink to the part's longest row, and the part is the batch
        // make_batch builds from its rows.
        int64_t S = 0, T = 0;
        for (int64_t idx : part.indices) {
          S = std::max<int64_t>(S, ex[idx].src.size() + 1);
          T = std::max<int64_t>(T, ex[idx].tgt.size() + 1);
        }
        CHECK(part.src.size(1) == S);
        CHECK(part.tgt_in.size(1) == T);
        shrank |= S < batch.src.size(1) || T < batch.tgt_in.size(1);
        check_same_batch(part, made_from_rows(part, ex));
      }
      CHECK(static_cast<int64_t>(seen.size()) == B);
      for (const auto& [idx, count] : seen) CHECK(count == 1);
      CHECK(tokens == batch.num_tgt_tokens);
    }
  }
  CHECK(shrank);
}

TEST_CASE("take_part picks the rows of an LMBatch", "[data][batching]") {
  Ids ids(500);
  for (int64_t i = 0; i < 500; ++i) ids[i] = i;
  LMBatch batch = LMBatcher(ids, 7, 5, 3).next();
  CHECK(take_part(batch, 0, 1).x.to_vector<int64_t>() == batch.x.to_vector<int64_t>());
  for (int64_t parts : {2, 3, 7, 10}) {
    int64_t rows_seen = 0;
    for (int64_t p = 0; p < parts; ++p) {
      LMBatch part = take_part(batch, p, parts);
      const int64_t rows = p < 7 ? (6 - p) / parts + 1 : 0;
      REQUIRE(part.x.shape() == Shape{rows, 5});  // an empty part is [0, block]
      REQUIRE(part.y.shape() == Shape{rows, 5});
      for (int64_t i = 0; i < rows; ++i) {
        CHECK(row<int64_t>(part.x, i) == row<int64_t>(batch.x, p + i * parts));
        CHECK(row<int64_t>(part.y, i) == row<int64_t>(batch.y, p + i * parts));
      }
      rows_seen += rows;
    }
    CHECK(rows_seen == 7);
  }
}

TEST_CASE("take_part rejects bad parts and malformed batches", "[data][batching]") {
  TranslationBatch batch = TranslationBatcher(make_examples(10), 100, 0).next();
  REQUIRE_THROWS_WITH(take_part(batch, 0, 0), Contains("take_part: parts must be >= 1, got parts = 0"));
  REQUIRE_THROWS_WITH(take_part(batch, 0, -2), Contains("parts must be >= 1, got parts = -2"));
  REQUIRE_THROWS_WITH(take_part(batch, 3, 3), Contains("take_part: part must be in [0, parts), got part = 3 with parts = 3"));
  REQUIRE_THROWS_WITH(take_part(batch, -1, 2), Contains("got part = -1 with parts = 2"));
  REQUIRE_THROWS_WITH(take_part(TranslationBatch{}, 0, 1), Contains("take_part: src and tgt_in must be"));
  TranslationBatch no_mask = batch;
  no_mask.tgt_pad = Tensor();
  REQUIRE_THROWS_WITH(take_part(no_mask, 0, 1), Contains("take_part: tgt_pad must be"));

  Ids ids(100, 4);
  LMBatch lm = LMBatcher(ids, 4, 8, 0).next();
  REQUIRE_THROWS_WITH(take_part(lm, 0, 0), Contains("take_part: parts must be >= 1, got parts = 0"));
  REQUIRE_THROWS_WITH(take_part(lm, 5, 4), Contains("got part = 5 with parts = 4"));
  REQUIRE_THROWS_WITH(take_part(LMBatch{}, 0, 1), Contains("take_part: x must be [B, block]"));
}
