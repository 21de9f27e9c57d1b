#include "nn/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include "tensor/grad_mode.h"
#include "nn/dropout.h"
#include "nn/flash_attention.h"
#include "tensor/random.h"
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

// The structural parts of a pattern on the host: the very rules the fused
// kernels apply (AttentionPatternView), so a dense mask built here and the
// tiles a kernel skips never disagree.
struct HostPattern {
  std::vector<uint8_t> global, layout;
  AttentionPatternView view;

  HostPattern(int64_t T, int64_t S, bool causal, int64_t window) {
    view.T = T, view.S = S, view.shift = S - T;
    view.causal = causal;
    view.window = window;
  }
  void set_global(const std::vector<int64_t>& positions, const char* fn) {
    global.assign(static_cast<size_t>(view.S), 0);
    for (int64_t g : positions) {
      HEED_CHECK(g >= 0 && g < view.S, "{}: global position {} is outside [0, {})", fn, g, view.S);
      global[static_cast<size_t>(g)] = 1;
    }
    view.global = global.data();
  }
  void set_layout(const Tensor& l, int64_t block) {
    layout = l.to(kCPU).to(DType::UInt8).contiguous().to_vector<uint8_t>();
    view.layout = layout.data();
    view.block = block;
    view.layout_cols = l.size(1);
  }
  Tensor dense(Device device) const {
    return structural_mask(view.T, view.S, device, [&](int64_t i, int64_t j) { return view.structural_masked(i, j); });
  }
};

void check_layout(const char* fn, const Tensor& layout, int64_t T, int64_t S, int64_t block_size) {
  HEED_CHECK(block_size > 0, "{}: block_size must be positive, got {}", fn, block_size);
  HEED_CHECK(layout.defined() && layout.dtype() == DType::Bool, "{}: layout must be a bool tensor", fn);
  const int64_t bt = (T + block_size - 1) / block_size, bs = (S + block_size - 1) / block_size;
  HEED_CHECK(layout.dim() == 2 && layout.size(0) == bt && layout.size(1) == bs,
             "{}: layout must be [ceil(T / block), ceil(S / block)] = [{}, {}] for T = {}, S = {}, block {}, got {}",
             fn, bt, bs, T, S, block_size, shape_str(layout.shape()));
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
  auto build = [&] { return HostPattern(T, S, causal, window).dense(device); };
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
  return HostPattern(T, S, true, 0).dense(device);
}

Tensor sliding_window_mask(int64_t T, int64_t S, int64_t window, bool causal, Device device) {
  check_sizes("sliding_window_mask", T, S);
  HEED_CHECK(window > 0, "sliding_window_mask: window must be positive, got {}", window);
  return HostPattern(T, S, causal, window).dense(device);
}

Tensor local_global_mask(int64_t T, int64_t window, const std::vector<int64_t>& global_positions, bool causal,
                         Device device) {
  check_sizes("local_global_mask", T, T);
  HEED_CHECK(window > 0, "local_global_mask: window must be positive, got {}", window);
  HostPattern p(T, T, causal, window);
  p.set_global(global_positions, "local_global_mask");
  return p.dense(device);
}

Tensor block_sparse_mask(const Tensor& layout, int64_t T, int64_t S, int64_t block_size) {
  HEED_CHECK(T >= 0 && S >= 0, "block_sparse_mask: sizes must be non-negative, got T = {}, S = {}", T, S);
  check_layout("block_sparse_mask", layout, T, S, block_size);
  HostPattern p(T, S, false, 0);
  p.set_layout(layout, block_size);
  return p.dense(layout.device());
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

namespace {

// Every check of the options against the sizes, shared by both paths.
void check_options(const AttentionOptions& o, int64_t B, int64_t H, int64_t T, int64_t S, Device device) {
  HEED_CHECK(o.window >= 0, "scaled_dot_product_attention: window must be >= 0, got {}", o.window);
  HEED_CHECK(!o.causal || S >= T,
             "scaled_dot_product_attention: a causal mask needs at least as many keys as queries (queries are the "
             "last T of S positions), got T = {}, S = {}",
             T, S);
  HEED_CHECK(o.global_positions.empty() || o.window > 0,
             "scaled_dot_product_attention: global_positions apply to a sliding window; set window > 0");
  for (int64_t g : o.global_positions)
    HEED_CHECK(g >= 0 && g < S, "scaled_dot_product_attention: global position {} is outside the keys [0, {})", g, S);
  if (o.block_layout.defined()) {
    check_layout("scaled_dot_product_attention", o.block_layout, T, S, o.block_size);
    HEED_CHECK(o.block_layout.device() == device, "scaled_dot_product_attention: block_layout is on {}, scores on {}",
               o.block_layout.device(), device);
  }
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
  }
  if (o.key_padding_mask.defined()) {
    const Tensor& kp = o.key_padding_mask;
    check_mask(kp, "key_padding_mask");
    HEED_CHECK(kp.dim() == 2 && kp.size(0) == B && kp.size(1) == S,
               "scaled_dot_product_attention: key_padding_mask must be [B, S] = [{}, {}], got {}", B, S,
               shape_str(kp.shape()));
    HEED_CHECK(kp.device() == device, "scaled_dot_product_attention: key_padding_mask is on {}, scores on {}",
               kp.device(), device);
  }
}

// The structural part of the options as a dense [T, S] mask (undefined when it masks nothing).
Tensor structural_part(const AttentionOptions& o, int64_t T, int64_t S, Device device) {
  if (!o.global_positions.empty() || o.block_layout.defined()) {
    HostPattern p(T, S, o.causal, o.window);
    if (!o.global_positions.empty()) p.set_global(o.global_positions, "scaled_dot_product_attention");
    if (o.block_layout.defined()) p.set_layout(o.block_layout, o.block_size);
    return p.dense(device);
  }
  // One query, the last of S positions (decoding with a key/value cache):
  // the causal mask hides nothing, so none is made.
  const bool causal_hides_something = o.causal && T > 1;
  if (o.window > 0 || causal_hides_something) return structural_attention_mask(T, S, o.window, o.causal, device);
  return Tensor();
}

}  // namespace

Tensor attention_mask(const AttentionOptions& o, int64_t B, int64_t H, int64_t T, int64_t S, Device device) {
  check_options(o, B, H, T, S, device);
  Tensor mask = structural_part(o, T, S, device);
  if (o.attn_mask.defined()) mask = combine_masks(mask, o.attn_mask);
  if (o.key_padding_mask.defined()) mask = combine_masks(mask, o.key_padding_mask.view({B, 1, 1, S}));
  return mask;
}

namespace {

std::atomic<int> g_default_impl{-1};
constexpr int64_t kMaxFusedHeadDim = 256;  // cuda/attention.h's kAttentionMaxHeadDim  // -1: not read from the environment yet

AttentionImpl impl_from_env() {
  const char* e = std::getenv("HEED_ATTENTION");
  if (!e || !*e) return AttentionImpl::Fused;
  const std::string v(e);
  if (v == "fused" || v == "auto") return AttentionImpl::Fused;
  if (v == "composed") return AttentionImpl::Composed;
  HEED_FAIL("HEED_ATTENTION must be fused, composed or auto, got '{}'", v);
}

struct Sizes {
  int64_t B, Hq, T, d, Hkv, S, dv, G;
};

Sizes check_operands(const Tensor& q, const Tensor& k, const Tensor& v) {
  HEED_CHECK(q.defined() && k.defined() && v.defined(), "scaled_dot_product_attention: q, k and v must be defined");
  HEED_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
             "scaled_dot_product_attention: expected q [B, Hq, T, d], k [B, Hkv, S, d], v [B, Hkv, S, dv], got q {}, "
             "k {}, v {}",
             shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  Sizes z{q.size(0), q.size(1), q.size(2), q.size(3), k.size(1), k.size(2), v.size(3), 0};
  HEED_CHECK(k.size(0) == z.B && v.size(0) == z.B && k.size(3) == z.d && v.size(1) == z.Hkv && v.size(2) == z.S,
             "scaled_dot_product_attention: shapes do not agree: q {} (B, Hq, T, d), k {} (B, Hkv, S, d), v {} "
             "(B, Hkv, S, dv)",
             shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  HEED_CHECK(z.Hkv > 0 && z.Hq % z.Hkv == 0,
             "scaled_dot_product_attention: query heads ({}) must be a multiple of key/value heads ({})", z.Hq, z.Hkv);
  HEED_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && q.is_floating_point(),
             "scaled_dot_product_attention: q, k, v must share one float dtype, got {}, {}, {}", q.dtype(), k.dtype(),
             v.dtype());
  HEED_CHECK(q.device() == k.device() && q.device() == v.device(),
             "scaled_dot_product_attention: q, k, v must be on one device, got {}, {}, {}", q.device(), k.device(),
             v.device());
  z.G = z.Hq / z.Hkv;
  return z;
}

// softmax(q k^T * scale + mask) v with every intermediate a tensor.
AttentionOutput composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o,
                                   const Sizes& z, double scale) {
  const int64_t B = z.B, Hq = z.Hq, T = z.T, d = z.d, Hkv = z.Hkv, S = z.S, dv = z.dv, G = z.G;
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
  if (mask.defined()) scores = masked_fill(scores, mask, -std::numeric_limits<double>::infinity());
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

AttentionOutput fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o,
                                const Sizes& z, double scale) {
  const Device device = q.device();
  check_options(o, z.B, z.Hq, z.T, z.S, device);
  AttentionArgs args;
  args.scale = scale;
  args.causal = o.causal;
  args.window = o.window;
  if (!o.global_positions.empty()) {
    std::vector<uint8_t> g(static_cast<size_t>(z.S), 0);
    for (int64_t p : o.global_positions) g[static_cast<size_t>(p)] = 1;
    args.global = from_vector<uint8_t>(g, {z.S}).to(DType::Bool).to(device);
  }
  if (o.block_layout.defined()) {
    args.layout = o.block_layout.contiguous();
    args.block = o.block_size;
  }
  if (o.attn_mask.defined()) args.mask = expand(o.attn_mask, {z.B, z.Hq, z.T, z.S});
  if (o.key_padding_mask.defined()) args.key_padding = o.key_padding_mask;
  if (o.dropout_p > 0) {
    // The blocks nn::dropout would take for the [B, Hq, T, S] weights.
    HEED_CHECK(o.dropout_p <= 1, "dropout: p must be in [0, 1], got {}", o.dropout_p);
    Generator& gen = o.generator ? *o.generator : default_generator();
    args.dropout_p = o.dropout_p;
    args.seed = gen.seed();
    args.offset = gen.advance((static_cast<uint64_t>(z.B * z.Hq * z.T * z.S) + 3) / 4);
  }
  // For a backward that records a graph: the same attention, composed, with
  // the generator rewound to draw the same dropout mask.
  AttentionOptions co = o;
  co.need_weights = false;
  co.impl = AttentionImpl::Composed;
  ComposedAttention composed = [co, z, scale, seed = args.seed, offset = args.offset](
                                   const Tensor& qq, const Tensor& kk, const Tensor& vv) {
    AttentionOptions c = co;
    Generator gen(seed);
    gen.set_state(seed, offset);
    c.generator = &gen;
    return composed_attention(qq, kk, vv, c, z, scale).output;
  };
  FusedAttentionOutput f = flash_attention(q, k, v, args, composed);
  AttentionOutput result;
  result.output = f.output;
  result.fused = true;
  if (o.need_weights)
    result.weights = attention_weights_from_lse(q, k, f.lse, args, attention_mask(o, z.B, z.Hq, z.T, z.S, device));
  return result;
}

}  // namespace

void set_default_attention_impl(AttentionImpl impl) {
  g_default_impl.store(static_cast<int>(impl == AttentionImpl::Auto ? AttentionImpl::Fused : impl));
}

AttentionImpl default_attention_impl() {
  int v = g_default_impl.load();
  if (v < 0) {
    int want = static_cast<int>(impl_from_env());
    g_default_impl.compare_exchange_strong(v, want);
    v = g_default_impl.load();
  }
  return static_cast<AttentionImpl>(v);
}

AttentionImpl resolve_attention_impl(const AttentionOptions& o, Device device) {
  const AttentionImpl want = o.impl == AttentionImpl::Auto ? default_attention_impl() : o.impl;
  if (want == AttentionImpl::Composed) return want;
  // p = 1 drops every weight: the composed path's exact zero, no 1 / (1 - p).
  if (o.dropout_p >= 1) return AttentionImpl::Composed;
  const bool kernel = has_backend(device.type) && backend(device).attention_forward != nullptr &&
                      backend(device).attention_backward != nullptr;
  if (o.impl == AttentionImpl::Fused) {
    HEED_CHECK(!o.weights_hook,
               "scaled_dot_product_attention: a weights_hook edits the weights on their way to the values, which "
               "only the composed implementation has; use AttentionImpl::Auto or Composed");
    HEED_CHECK(kernel, "scaled_dot_product_attention: no fused attention kernel on {}", device);
    return AttentionImpl::Fused;
  }
  return !o.weights_hook && kernel ? AttentionImpl::Fused : AttentionImpl::Composed;
}

AttentionOutput scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& o) {
  const Sizes z = check_operands(q, k, v);
  const double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(z.d));
  AttentionImpl impl = resolve_attention_impl(o, q.device());
  // The GPU kernels keep a row of q and of the output per thread group: head
  // widths past kMaxFusedHeadDim run composed there unless fused was demanded
  // (then the kernel's own error names the limit).
  if (impl == AttentionImpl::Fused && o.impl == AttentionImpl::Auto && !q.device().is_cpu() &&
      std::max(z.d, z.dv) > kMaxFusedHeadDim)
    impl = AttentionImpl::Composed;
  if (impl == AttentionImpl::Fused) return fused_attention(q, k, v, o, z, scale);
  return composed_attention(q, k, v, o, z, scale);
}

Tensor attention_weights_grad(const AttentionOutput& r, const Tensor& v) {
  HEED_CHECK(r.weights.defined(), "attention_weights_grad: the call was made without need_weights");
  Tensor direct = r.weights.requires_grad() ? r.weights.grad() : Tensor();
  if (!r.fused) return direct;
  const Tensor& go = r.output.grad();
  if (!go.defined()) return direct;
  // The weights multiplied v: d loss / d weights gets grad_output v^T (grouped heads read their kv head).
  const int64_t B = v.size(0), Hkv = v.size(1), S = v.size(2), dv = v.size(3);
  const int64_t Hq = go.size(1), T = go.size(2), G = Hq / Hkv;
  Tensor through_output;
  {
    NoGradGuard no_grad;
    through_output = G == 1 ? matmul(go, v.detach().transpose(-2, -1))
                            : matmul(go.reshape({B, Hkv, G, T, dv}), v.detach().transpose(-2, -1).unsqueeze(2))
                                  .reshape({B, Hq, T, S});
  }
  return direct.defined() ? add(direct, through_output) : through_output;
}

}  // namespace heed::nn
