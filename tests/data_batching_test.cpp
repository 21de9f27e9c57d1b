// Translation and language-model batchers: layout, masks, token budget,
// coverage of an epoch, determinism and exact resume.
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
