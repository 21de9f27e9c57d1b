#include "data/batching.h"

#include <algorithm>

#include "data/random.h"
#include "data/tokenizer.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace heed::data {
namespace {
constexpr int64_t kBatchesPerWindow = 50;  // length-sorting window, in batches
}

TranslationBatcher::TranslationBatcher(std::vector<EncodedPair> examples, int64_t max_tokens, uint64_t seed,
                                       bool shuffle, int64_t max_len)
    : examples_(std::move(examples)), max_tokens_(max_tokens), seed_(seed), shuffle_(shuffle), max_len_(max_len) {
  HEED_CHECK(max_tokens > 0, "TranslationBatcher: max_tokens must be > 0, got {}", max_tokens);
  HEED_CHECK(max_len >= 0, "TranslationBatcher: max_len must be >= 0 (0 keeps all), got {}", max_len);
  int64_t total_cost = 0;
  for (size_t i = 0; i < examples_.size(); ++i) {
    const EncodedPair& e = examples_[i];
    int64_t s = static_cast<int64_t>(e.src.size()) + 1, t = static_cast<int64_t>(e.tgt.size()) + 1;
    if (max_len > 0 && (s > max_len || t > max_len)) {
      ++num_dropped_;
      continue;
    }
    kept_.push_back(static_cast<int64_t>(i));
    total_cost += s + t;
  }
  HEED_CHECK(!kept_.empty(), "TranslationBatcher: no examples to batch ({} given, {} longer than max_len {})",
             examples_.size(), num_dropped_, max_len);

  std::vector<int64_t> order = kept_;
  if (shuffle_) {
    SplitMix64 rng(hash_counter(seed_, 0x5eed));
    seeded_shuffle(order, rng);
    // Window size: about kBatchesPerWindow batches of the average example.
    double mean_cost = static_cast<double>(total_cost) / kept_.size();
    int64_t per_batch = std::max<int64_t>(1, static_cast<int64_t>(max_tokens_ / mean_cost));
    int64_t window = per_batch * kBatchesPerWindow;
    for (size_t start = 0; start < order.size(); start += window) {
      std::vector<int64_t> part(order.begin() + start, order.begin() + std::min(order.size(), start + window));
      for (auto& b : pack(part)) batches_.push_back(std::move(b));
    }
  } else {
    batches_ = pack(order);
  }
}

// Sorts `order` by (src, tgt) length and packs it greedily under max_tokens.
std::vector<std::vector<int64_t>> TranslationBatcher::pack(const std::vector<int64_t>& order) const {
  std::vector<int64_t> sorted = order;
  std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t b) {
    const EncodedPair &x = examples_[a], &y = examples_[b];
    return x.src.size() != y.src.size() ? x.src.size() < y.src.size() : x.tgt.size() < y.tgt.size();
  });
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> current;
  int64_t max_s = 0, max_t = 0;
  for (int64_t i : sorted) {
    int64_t s = std::max<int64_t>(max_s, examples_[i].src.size() + 1);
    int64_t t = std::max<int64_t>(max_t, examples_[i].tgt.size() + 1);
    if (!current.empty() && static_cast<int64_t>(current.size() + 1) * (s + t) > max_tokens_) {
      batches.push_back(std::move(current));
      current.clear();
      s = examples_[i].src.size() + 1;
      t = examples_[i].tgt.size() + 1;
    }
    current.push_back(i);
    max_s = s;
    max_t = t;
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

TranslationBatch TranslationBatcher::make_batch(const std::vector<int64_t>& rows, int64_t epoch) const {
  const auto B = static_cast<int64_t>(rows.size());
  std::vector<EncodedPair> resampled;
  if (resample_ && epoch >= 0) {
    for (int64_t i : rows) {
      EncodedPair e = resample_(i, epoch);
      const bool fits = max_len_ == 0 || (static_cast<int64_t>(e.src.size()) + 1 <= max_len_ &&
                                          static_cast<int64_t>(e.tgt.size()) + 1 <= max_len_);
      resampled.push_back(fits ? std::move(e) : examples_[i]);
    }
  }
  auto row = [&](int64_t b) -> const EncodedPair& { return resampled.empty() ? examples_[rows[b]] : resampled[b]; };
  int64_t S = 0, T = 0;
  for (int64_t b = 0; b < B; ++b) {
    S = std::max<int64_t>(S, row(b).src.size() + 1);
    T = std::max<int64_t>(T, row(b).tgt.size() + 1);
  }
  std::vector<int64_t> src(B * S, kPad), tgt_in(B * T, kPad), tgt_out(B * T, kPad);
  std::vector<bool> src_pad(B * S, true), tgt_pad(B * T, true);
  TranslationBatch batch;
  for (int64_t b = 0; b < B; ++b) {
    const EncodedPair& e = row(b);
    const auto n = static_cast<int64_t>(e.src.size()), m = static_cast<int64_t>(e.tgt.size());
    for (int64_t k = 0; k < n; ++k) src[b * S + k] = e.src[k];
    src[b * S + n] = kEos;
    for (int64_t k = 0; k <= n; ++k) src_pad[b * S + k] = false;
    tgt_in[b * T] = kBos;
    for (int64_t k = 0; k < m; ++k) {
      tgt_in[b * T + k + 1] = e.tgt[k];
      tgt_out[b * T + k] = e.tgt[k];
    }
    tgt_out[b * T + m] = kEos;
    for (int64_t k = 0; k <= m; ++k) tgt_pad[b * T + k] = false;
    batch.num_tgt_tokens += m + 1;
    batch.indices.push_back(rows[b]);
  }
  batch.src = from_vector<int64_t>(src, {B, S});
  batch.tgt_in = from_vector<int64_t>(tgt_in, {B, T});
  batch.tgt_out = from_vector<int64_t>(tgt_out, {B, T});
  batch.src_pad = from_vector<bool>(src_pad, {B, S});
  batch.tgt_pad = from_vector<bool>(tgt_pad, {B, T});
  return batch;
}

TranslationBatch TranslationBatcher::next() {
  const int64_t n = batches_per_epoch(), e = position_ / n;
  if (order_epoch_ != e) {
    order_.resize(n);
    for (int64_t i = 0; i < n; ++i) order_[i] = i;
    if (shuffle_) {
      SplitMix64 rng(hash_counter(seed_, 0xba7c4, static_cast<uint64_t>(e)));
      seeded_shuffle(order_, rng);
    }
    order_epoch_ = e;
  }
  return make_batch(batches_[order_[position_++ % n]], e);
}

void TranslationBatcher::set_position(int64_t position) {
  HEED_CHECK(position >= 0, "TranslationBatcher::set_position: position must be >= 0, got {}", position);
  position_ = position;
}

std::vector<TranslationBatch> TranslationBatcher::all_batches() const {
  std::vector<TranslationBatch> out;
  for (const auto& rows : pack(kept_)) out.push_back(make_batch(rows));
  return out;
}

// ---- LMBatcher -----------------------------------------------------------------

LMBatcher::LMBatcher(std::vector<int64_t> ids, int64_t batch_size, int64_t block_size, uint64_t seed)
    : ids_(std::move(ids)), batch_size_(batch_size), block_size_(block_size), seed_(seed) {
  HEED_CHECK(batch_size > 0 && block_size > 0, "LMBatcher: batch_size and block_size must be > 0, got {} and {}",
             batch_size, block_size);
  HEED_CHECK(static_cast<int64_t>(ids_.size()) >= block_size + 1,
             "LMBatcher: {} ids are too few for one window of block_size + 1 = {}", ids_.size(), block_size + 1);
}

LMBatch LMBatcher::make_batch(const std::vector<int64_t>& starts) const {
  const auto B = static_cast<int64_t>(starts.size());
  std::vector<int64_t> x(B * block_size_), y(B * block_size_);
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(ids_.begin() + starts[b], block_size_, x.begin() + b * block_size_);
    std::copy_n(ids_.begin() + starts[b] + 1, block_size_, y.begin() + b * block_size_);
  }
  return {from_vector<int64_t>(x, {B, block_size_}), from_vector<int64_t>(y, {B, block_size_})};
}

LMBatch LMBatcher::next() {
  // Window starts in [0, N - block_size - 1], each drawn from (seed, batch, row).
  const auto choices = static_cast<uint64_t>(ids_.size()) - static_cast<uint64_t>(block_size_);
  std::vector<int64_t> starts(batch_size_);
  for (int64_t b = 0; b < batch_size_; ++b)
    starts[b] = static_cast<int64_t>(hash_counter(seed_, static_cast<uint64_t>(position_), b) % choices);
  ++position_;
  return make_batch(starts);
}

void LMBatcher::set_position(int64_t position) {
  HEED_CHECK(position >= 0, "LMBatcher::set_position: position must be >= 0, got {}", position);
  position_ = position;
}

std::vector<LMBatch> LMBatcher::sequential_batches(int64_t max_batches) const {
  const int64_t windows = (static_cast<int64_t>(ids_.size()) - 1) / block_size_;
  std::vector<LMBatch> out;
  for (int64_t w = 0; w < windows; w += batch_size_) {
    if (max_batches > 0 && static_cast<int64_t>(out.size()) == max_batches) break;
    std::vector<int64_t> starts;
    for (int64_t k = w; k < std::min(windows, w + batch_size_); ++k) starts.push_back(k * block_size_);
    out.push_back(make_batch(starts));
  }
  return out;
}

// ---- take_part -------------------------------------------------------------------

namespace {
// Rows part, part + parts, ... of a batch of B rows. Counted, not stepped, so
// that a huge `parts` cannot overflow.
std::vector<int64_t> part_rows(int64_t B, int64_t part, int64_t parts) {
  HEED_CHECK(parts >= 1, "take_part: parts must be >= 1, got parts = {}", parts);
  HEED_CHECK(part >= 0 && part < parts, "take_part: part must be in [0, parts), got part = {} with parts = {}", part,
             parts);
  const int64_t count = part < B ? (B - 1 - part) / parts + 1 : 0;
  std::vector<int64_t> rows(count);
  for (int64_t i = 0; i < count; ++i) rows[i] = part + i * parts;
  return rows;
}

void check_shape(const Tensor& t, const char* name, const Shape& want) {
  HEED_CHECK(t.defined() && t.shape() == want, "take_part: {} must be {}, got {}", name, shape_str(want),
             t.defined() ? shape_str(t.shape()) : "an undefined tensor");
}

// Columns [0, width) of the given rows of a row-major [B, L] table, as a
// [rows, width] tensor.
template <class T>
Tensor pick(const std::vector<T>& all, int64_t L, const std::vector<int64_t>& rows, int64_t width) {
  std::vector<T> out;
  out.reserve(rows.size() * width);
  for (int64_t r : rows) out.insert(out.end(), all.begin() + r * L, all.begin() + r * L + width);
  return from_vector<T>(out, {static_cast<int64_t>(rows.size()), width});
}

// One past the last non-PAD position over the given rows of a [B, L] mask:
// the width the rows need once the padding for longer rows is cut.
int64_t needed_width(const std::vector<bool>& pad, int64_t L, const std::vector<int64_t>& rows) {
  int64_t width = 0;
  for (int64_t r : rows)
    for (int64_t k = L; k > width; --k)
      if (!pad[r * L + k - 1]) {
        width = k;
        break;
      }
  return width;
}
}  // namespace

TranslationBatch take_part(const TranslationBatch& batch, int64_t part, int64_t parts) {
  HEED_CHECK(batch.src.defined() && batch.src.dim() == 2 && batch.tgt_in.defined() && batch.tgt_in.dim() == 2,
             "take_part: src and tgt_in must be [B, S] and [B, T]");
  const int64_t B = batch.src.size(0), S = batch.src.size(1), T = batch.tgt_in.size(1);
  check_shape(batch.tgt_in, "tgt_in", {B, T});
  check_shape(batch.tgt_out, "tgt_out", {B, T});
  check_shape(batch.src_pad, "src_pad", {B, S});
  check_shape(batch.tgt_pad, "tgt_pad", {B, T});
  HEED_CHECK(batch.indices.empty() || static_cast<int64_t>(batch.indices.size()) == B,
             "take_part: a batch of {} rows has {} indices", B, batch.indices.size());
  const std::vector<int64_t> rows = part_rows(B, part, parts);

  // Cells past a row's last non-PAD position are PAD already, as make_batch
  // would write them; cutting the columns no kept row needs re-pads the part.
  const std::vector<bool> src_pad = batch.src_pad.to_vector<bool>(), tgt_pad = batch.tgt_pad.to_vector<bool>();
  const int64_t part_S = needed_width(src_pad, S, rows), part_T = needed_width(tgt_pad, T, rows);
  TranslationBatch out;
  out.src = pick(batch.src.to_vector<int64_t>(), S, rows, part_S);
  out.tgt_in = pick(batch.tgt_in.to_vector<int64_t>(), T, rows, part_T);
  out.tgt_out = pick(batch.tgt_out.to_vector<int64_t>(), T, rows, part_T);
  out.src_pad = pick(src_pad, S, rows, part_S);
  out.tgt_pad = pick(tgt_pad, T, rows, part_T);
  for (int64_t r : rows) {
    for (int64_t k = 0; k < T; ++k) out.num_tgt_tokens += !tgt_pad[r * T + k];
    if (!batch.indices.empty()) out.indices.push_back(batch.indices[r]);
  }
  return out;
}

LMBatch take_part(const LMBatch& batch, int64_t part, int64_t parts) {
  HEED_CHECK(batch.x.defined() && batch.x.dim() == 2, "take_part: x must be [B, block]");
  const int64_t B = batch.x.size(0), L = batch.x.size(1);
  check_shape(batch.y, "y", {B, L});
  const std::vector<int64_t> rows = part_rows(B, part, parts);
  return {pick(batch.x.to_vector<int64_t>(), L, rows, L), pick(batch.y.to_vector<int64_t>(), L, rows, L)};
}

}  // namespace heed::data
