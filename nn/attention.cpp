#include "nn/attention.h"

#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include "nn/dropout.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// Builds a [T, S] mask on the host from masked(i, j), then moves it.
template <class F>
Tensor structural_mask(int64_t T, int64_t S, Device device, F masked) {
  std::vector<uint8_t> m(static_cast<size_t>(T * S));
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < S; ++j) m[static_cast<size_t>(i * S + j)] = masked(i, j) ? 1 : 0;
  return from_vector<uint8_t>(m, {T, S}).to(DType::Bool).to(device);
}

void check_sizes(const char* fn, int64_t T, int64_t S) {
  HEED_CHECK(T >= 0 && S >= 0, "{}: sizes must be non-negative, got T = {}, S = {}", fn, T, S);
  HEED_CHECK(S >= T, "{}: queries are the last T of the S key positions, so S ({}) must be >= T ({})", fn, S, T);
}

void check_mask(const Tensor& mask, const char* what) {
  HEED_CHECK(mask.dtype() == DType::Bool,
             "scaled_dot_product_attention: {} must be bool (true = masked), got {}; convert with .to(DType::Bool)",
             what, mask.dtype());
}

// The causal / sliding-window mask of attention_mask() for a device other than
// the CPU, kept per (T, S, window, causal, device). A mask is built on the host
// and copied over, and a copy from pageable host memory waits for the device to
// finish its queued work: uncached, every attention layer of every forward would
// stall the GPU. Training sees a few shapes; decoding adds one per length, so the
// cache is emptied when it grows past kMaxCachedMasks. CPU masks are built fresh.
struct MaskCache {
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, int, int>;
  static constexpr size_t kMaxCachedMasks = 64;
  std::mutex mutex;
  std::map<Key, Tensor> masks;
};

MaskCache& mask_cache() {
  static MaskCache* cache = new MaskCache();  // never destroyed: device memory may outlive static destructors' order
  return *cache;
}

Tensor structural_attention_mask(int64_t T, int64_t S, int64_t window, bool causal, Device device) {
  auto build = [&] { return window > 0 ? sliding_window_mask(T, S, window, causal, device) : causal_mask(T, S, device); };
  if (device.is_cpu()) return build();
  MaskCache& cache = mask_cache();
  const MaskCache::Key key{T, S, window, causal, static_cast<int>(device.type), device.index};
  std::lock_guard<std::mutex> lock(cache.mutex);
  auto it = cache.masks.find(key);
  if (it != cache.masks.end()) return it->second;
  if (cache.masks.size() >= MaskCache::kMaxCachedMasks) cache.masks.clear();
  Tensor mask = build();
  cache.masks.emplace(key, mask);
  return mask;
}

}  // namespace

void clear_attention_mask_cache() {
  MaskCache& cache = mask_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.masks.clear();
}

Tensor causal_mask(int64_t T, int64_t S, Device device) {
  if (S < 0) S = T;
  check_sizes("causal_mask", T, S);
  const int64_t shift = S - T;
  return structural_mask(T, S, device, [&](int64_t i, int64_t j) { return j > i + shift; });
}

Tensor sliding_window_mask(int64_t T, int64_t S, int64_t window, bool causal, Device device) {
  check_sizes("sliding_window_mask", T, S);
  HEED_CHECK(window > 0, "sliding_window_mask: window must be positive, got {}", window);
  const int64_t shift = S - T;
  return structural_mask(T, S, device, [&](int64_t i, int64_t j) {
    const int64_t p = i + shift;
    if (causal) return j > p || j <= p - window;
    return std::abs(p - j) >= window;
  });
}

Tensor local_global_mask(int64_t T, int64_t window, const std::vector<int64_t>& global_positions, bool causal,
                         Device device) {
  check_sizes("local_global_mask", T, T);
  HEED_CHECK(window > 0, "local_global_mask: window must be positive, got {}", window);
  std::vector<bool> global(static_cast<size_t>(T), false);
  for (int64_t g : global_positions) {
    HEED_CHECK(g >= 0 && g < T, "local_global_mask: global position {} is outside [0, {})", g, T);
    global[static_cast<size_t>(g)] = true;
  }
  return structural_mask(T, T, device, [&](int64_t i, int64_t j) {
    if (causal && j > i) return true;
    if (global[static_cast<size_t>(i)] || global[static_cast<size_t>(j)]) return false;
    return causal ? j <= i - window : std::abs(i - j) >= window;
  });
}

Tensor block_sparse_mask(const Tensor& layout, int64_t T, int64_t S, int64_t block_size) {
  HEED_CHECK(block_size > 0, "block_sparse_mask: block_size must be positive, got {}", block_size);
  HEED_CHECK(T >= 0 && S >= 0, "block_sparse_mask: sizes must be non-negative, got T = {}, S = {}", T, S);
  HEED_CHECK(layout.defined() && layout.dtype() == DType::Bool, "block_sparse_mask: layout must be a bool tensor");
  const int64_t bt = (T + block_size - 1) / block_size, bs = (S + block_size - 1) / block_size;
  HEED_CHECK(layout.dim() == 2 && layout.size(0) == bt && layout.size(1) == bs,
             "block_sparse_mask: layout must be [ceil(T / block), ceil(S / block)] = [{}, {}] for T = {}, S = {}, "
             "block {}, got {}",
             bt, bs, T, S, block_size, shape_str(layout.shape()));
  std::vector<uint8_t> keep = layout.to(kCPU).to(DType::UInt8).to_vector<uint8_t>();
  return structural_mask(T, S, layout.device(), [&](int64_t i, int64_t j) {
    return keep[static_cast<size_t>((i / block_size) * bs + j / block_size)] == 0;
  });
}

Tensor padding_mask(const Tensor& ids, int64_t pad_id) {
  HEED_CHECK(ids.defined() && ids.dtype() == DType::Int64, "padding_mask: ids must be int64");
  return eq(ids, scalar_tensor(static_cast<double>(pad_id), DType::Int64, ids.device()));
}

Tensor combine_masks(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return logical_or(a, b);
}

Tensor attention_mask(const AttentionOptions& o, int64_t B, int64_t H, int64_t T, int64_t S, Device device) {
  HEED_CHECK(o.window >= 0, "scaled_dot_product_attention: window must be >= 0, got {}", o.window);
  HEED_CHECK(!o.causal || S >= T,
             "scaled_dot_product_attention: a causal mask needs at least as many keys as queries (queries are the "
             "last T of S positions), got T = {}, S = {}",
             T, S);
  Tensor mask;
  // One query, the last of S positions (decoding with a key/value cache):
  // the causal mask hides nothing, so none is made.
  const bool causal_hides_something = o.causal && T > 1;
  if (o.window > 0 || causal_hides_something) mask = structural_attention_mask(T, S, o.window, o.causal, device);
  if (o.attn_mask.defined()) {
    check_mask(o.attn_mask, "attn_mask");
    HEED_CHECK(o.attn_mask.device() == device, "scaled_dot_product_attention: attn_mask is on {}, scores on {}",
               o.attn_mask.device(), device);
    const Shape scores{B, H, T, S};
    const Tensor& m = o.attn_mask;
    bool fits = m.dim() <= 4;
    for (int64_t i = 1; fits && i <= m.dim(); ++i) fits = m.size(-i) == 1 || m.size(-i) == scores[4 - i];
    HEED_CHECK(fits,
               "scaled_dot_product_attention: attn_mask of shape {} does not broadcast to the scores [B, Hq, T, S] = {}",
               shape_str(m.shape()), shape_str(scores));
    mask = combine_masks(mask, m);
  }
  if (o.key_padding_mask.defined()) {
    const Tensor& kp = o.key_padding_mask;
    check_mask(kp, "key_padding_mask");
    HEED_CHECK(kp.dim() == 2 && kp.size(0) == B && kp.size(1) == S,
               "scaled_dot_product_attention: key_padding_mask must be [B, S] = [{}, {}], got {}", B, S,
               shape_str(kp.shape()));
    HEED_CHECK(kp.device() == device, "scaled_dot_product_attention: key_padding_mask is on {}, scores on {}",
               kp.device(), device);
    mask = combine_masks(mask, kp.view({B, 1, 1, S}));
  }
  return mask;
}

AttentionOutput scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& o) {
  HEED_CHECK(q.defined() && k.defined() && v.defined(), "scaled_dot_product_attention: q, k and v must be defined");
  HEED_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
             "scaled_dot_product_attention: expected q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv], got q {}, "
             "k {}, v {}",
             shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), d = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), dv = v.size(3);
  HEED_CHECK(k.size(0) == B && v.size(0) == B && k.size(3) == d && v.size(1) == Hkv && v.size(2) == S,
             "scaled_dot_product_attention: shapes do not agree: q {} (B, Hq, T, d), k {} (B, Hkv, S, d), v {} "
             "(B, Hkv, S, dv)",
             shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  HEED_CHECK(Hkv > 0 && Hq % Hkv == 0,
             "scaled_dot_product_attention: query heads ({}) must be a multiple of key/value heads ({})", Hq, Hkv);
  HEED_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && q.is_floating_point(),
             "scaled_dot_product_attention: q, k, v must share one float dtype, got {}, {}, {}", q.dtype(), k.dtype(),
             v.dtype());
  HEED_CHECK(q.device() == k.device() && q.device() == v.device(),
             "scaled_dot_product_attention: q, k, v must be on one device, got {}, {}, {}", q.device(), k.device(),
             v.device());
  const double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(d));
  const int64_t G = Hq / Hkv;

  // Grouped heads share their key/value head by broadcasting over a group
  // axis, so k and v are never copied G times and their gradients sum over
  // the group through the broadcast's backward.
  Tensor qs = mul(q, scale);
  Tensor kt = k.transpose(-2, -1);
  Tensor vv = v;
  if (G > 1) {
    qs = qs.reshape({B, Hkv, G, T, d});
    kt = kt.unsqueeze(2);
    vv = v.unsqueeze(2);
  }
  Tensor scores = matmul(qs, kt);
  if (G > 1) scores = scores.reshape({B, Hq, T, S});
  Tensor mask = attention_mask(o, B, Hq, T, S, q.device());
  if (mask.defined()) {
    scores = masked_fill(scores, mask, -std::numeric_limits<double>::infinity());
  }
  // heed's softmax gives an all -inf row zero weights (and zero gradient).
  Tensor weights = softmax(scores, -1);
  if (o.dropout_p > 0) weights = dropout(weights, o.dropout_p, true, o.generator);
  if (o.weights_hook) {
    const Shape expected = weights.shape();
    weights = o.weights_hook(weights);
    HEED_CHECK(weights.defined() && weights.shape() == expected,
               "scaled_dot_product_attention: weights_hook must return weights of shape {}, got {}",
               shape_str(expected), weights.defined() ? shape_str(weights.shape()) : std::string("undefined"));
  }
  Tensor out = G > 1 ? matmul(weights.reshape({B, Hkv, G, T, S}), vv).reshape({B, Hq, T, dv}) : matmul(weights, vv);
  AttentionOutput result;
  result.output = out;
  if (o.need_weights) result.weights = weights;
  return result;
}

}  // namespace heed::nn
