// scaled_dot_product_attention, the mask builders, MultiheadAttention (GQA,
// key/value cache, weights hook) and attention recording. Every case tagged
// [device] runs once per test device (tests/test_devices.h): the CPU, and
// cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <heed.h>
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
using namespace heed::test;

namespace {

Tensor randn64(const Shape& shape, Generator& g) { return randn(shape, &g, DType::Float64); }

// Attention computed entry by entry in double, the way the reference README
// states it: scores q.k * scale, masked keys skipped, softmax, weighted sum.
// masked(b, h, i, j) says which keys are masked. Returns out and weights.
template <class Masked>
std::pair<std::vector<double>, std::vector<double>> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                                                    Masked masked) {
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), d = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), dv = v.size(3), G = Hq / Hkv;
  auto qv = q.contiguous().to_vector<double>(), kv = k.contiguous().to_vector<double>();
  auto vv = v.contiguous().to_vector<double>();
  std::vector<double> out(B * Hq * T * dv, 0.0), w(B * Hq * T * S, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t hk = h / G;
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(S, -INFINITY);
        double m = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          if (masked(b, h, i, j)) continue;
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += qv[((b * Hq + h) * T + i) * d + c] * kv[((b * Hkv + hk) * S + j) * d + c];
          s[j] = dot / std::sqrt(static_cast<double>(d));
          m = std::max(m, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < S; ++j) z += std::isinf(s[j]) ? 0 : std::exp(s[j] - m);
        for (int64_t j = 0; j < S; ++j) {
          const double p = std::isinf(s[j]) ? 0 : std::exp(s[j] - m) / z;
          w[((b * Hq + h) * T + i) * S + j] = p;
          for (int64_t c = 0; c < dv; ++c)
            out[((b * Hq + h) * T + i) * dv + c] += p * vv[((b * Hkv + hk) * S + j) * dv + c];
        }
      }
    }
  return {out, w};
}

// out and weights flattened into one tensor, for gradcheck.
Tensor both(const nn::AttentionOutput& a) { return cat({a.output.flatten(), a.weights.flatten()}); }

}  // namespace

// ---- masks ---------------------------------------------------------------------

TEST_CASE("Mask builders mark what a query may not attend", "[attention][masks]") {
  auto bits = [](const Tensor& m) { return m.to(DType::Int64).to_vector<int64_t>(); };
  REQUIRE(bits(nn::causal_mask(3)) == std::vector<int64_t>{0, 1, 1, 0, 0, 1, 0, 0, 0});
  // Two new queries over four keys (two cached): they sit at positions 2 and 3.
  REQUIRE(bits(nn::causal_mask(2, 4)) == std::vector<int64_t>{0, 0, 0, 1, 0, 0, 0, 0});
  // Causal window 2: itself and the key before.
  REQUIRE(bits(nn::sliding_window_mask(4, 4, 2)) ==
          std::vector<int64_t>{0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0});
  // Symmetric window 2: one key each side.
  REQUIRE(bits(nn::sliding_window_mask(4, 4, 2, false)) ==
          std::vector<int64_t>{0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0});
  // Window 1 plus global token 0: row 0 sees all, column 0 is seen by all.
  REQUIRE(bits(nn::local_global_mask(3, 1, {0})) == std::vector<int64_t>{0, 0, 0, 0, 0, 1, 0, 1, 0});
  REQUIRE(bits(nn::local_global_mask(3, 1, {0}, true)) == std::vector<int64_t>{0, 1, 1, 0, 0, 1, 0, 1, 0});
  // 2x2 blocks over [3, 4]: layout rows/cols are ceil(3/2) x ceil(4/2).
  Tensor layout = from_vector<bool>({true, false, false, true}, {2, 2});
  REQUIRE(bits(nn::block_sparse_mask(layout, 3, 4, 2)) ==
          std::vector<int64_t>{0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0});
  REQUIRE(bits(nn::padding_mask(from_vector<int64_t>({5, 0, 3, 0}, {2, 2}), 0)) == std::vector<int64_t>{0, 1, 0, 1});
  REQUIRE(bits(nn::combine_masks(nn::causal_mask(2), from_vector<bool>({true, false}, {1, 2}))) ==
          std::vector<int64_t>{1, 1, 1, 0});
}

TEST_CASE("Mask builders reject bad sizes with clear errors", "[attention][masks][errors]") {
  REQUIRE_THROWS_WITH(nn::causal_mask(4, 3), Contains("S (3) must be >= T (4)"));
  REQUIRE_THROWS_WITH(nn::sliding_window_mask(3, 3, 0), Contains("window must be positive"));
  REQUIRE_THROWS_WITH(nn::local_global_mask(3, 1, {3}), Contains("global position 3 is outside [0, 3)"));
  REQUIRE_THROWS_WITH(nn::block_sparse_mask(from_vector<bool>({true}, {1, 1}), 3, 4, 2),
                      Contains("layout must be [ceil(T / block), ceil(S / block)] = [2, 2]"));
}

// ---- scaled_dot_product_attention ------------------------------------------------

TEST_CASE("sdpa matches attention written entry by entry, for every mask kind", "[attention][sdpa][device]") {
  FOR_EACH_TEST_DEVICE(dev) {
    Generator g(11);
    const int64_t B = 2, H = 4, T = 5, S = 6, d = 3, dv = 2;
    auto rnd = [&](const Shape& s) { return randn64(s, g).to(dev); };
    Tensor q = rnd({B, H, T, d}), k = rnd({B, H, S, d}), v = rnd({B, H, S, dv});
    SECTION("no mask, T != S") {
      nn::AttentionOptions o;
      o.need_weights = true;
      auto r = nn::scaled_dot_product_attention(q, k, v, o);
      REQUIRE(r.output.device() == dev);
      auto [out, w] = naive_attention(q, k, v, [](auto...) { return false; });
      require_close(r.output, out, 1e-10);
      require_close(r.weights, w, 1e-10);
    }
    SECTION("key padding and an explicit mask combine") {
      Tensor kp = mask(dev, {false, false, true, false, false, true, false, false, false, false, true, true}, {B, S});
      Tensor extra = nn::sliding_window_mask(T, S, 3, false, dev);
      REQUIRE(extra.device() == dev);
      nn::AttentionOptions o;
      o.key_padding_mask = kp;
      o.attn_mask = extra;
      o.need_weights = true;
      auto kpv = kp.to(DType::Int64).to_vector<int64_t>(), ev = extra.to(DType::Int64).to_vector<int64_t>();
      auto r = nn::scaled_dot_product_attention(q, k, v, o);
      auto [out, w] = naive_attention(q, k, v, [&](int64_t b, int64_t, int64_t i, int64_t j) {
        return kpv[b * S + j] || ev[i * S + j];
      });
      require_close(r.output, out, 1e-10);
      require_close(r.weights, w, 1e-10);
    }
    SECTION("causal sliding window, grouped-query heads") {
      Tensor qg = rnd({B, 8, 7, d}), kg = rnd({B, 2, 7, d}), vg = rnd({B, 2, 7, dv});
      nn::AttentionOptions o;
      o.causal = true;
      o.window = 3;
      o.need_weights = true;
      auto r = nn::scaled_dot_product_attention(qg, kg, vg, o);
      auto [out, w] =
          naive_attention(qg, kg, vg, [](int64_t, int64_t, int64_t i, int64_t j) { return j > i || j <= i - 3; });
      require_close(r.output, out, 1e-10);
      require_close(r.weights, w, 1e-10);
      // Grouped-query is the same as repeating each kv head for its group.
      Tensor kr = cat({kg.narrow(1, 0, 1).expand({B, 4, 7, d}), kg.narrow(1, 1, 1).expand({B, 4, 7, d})}, 1);
      Tensor vr = cat({vg.narrow(1, 0, 1).expand({B, 4, 7, dv}), vg.narrow(1, 1, 1).expand({B, 4, 7, dv})}, 1);
      require_close(nn::scaled_dot_product_attention(qg, kr, vr, o).output, out, 1e-10);
    }
  }
}

TEST_CASE("sdpa gradients of the output and the weights pass gradcheck", "[attention][sdpa][gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(dev) {
    Generator g(3);
    SECTION("plain, key padding") {
      Tensor q = randn64({2, 2, 3, 4}, g).requires_grad_(), k = randn64({2, 2, 5, 4}, g).requires_grad_();
      Tensor v = randn64({2, 2, 5, 3}, g).requires_grad_();
      nn::AttentionOptions o;
      o.need_weights = true;
      o.key_padding_mask = mask(dev, {false, true, false, false, false, false, false, false, true, true}, {2, 5});
      REQUIRE(gradcheck_on(
          dev, [&](const TensorList& in) { return both(nn::scaled_dot_product_attention(in[0], in[1], in[2], o)); },
          {q, k, v}));
    }
    SECTION("causal, grouped-query (kv gradients sum over the group)") {
      Tensor q = randn64({1, 4, 4, 3}, g).requires_grad_(), k = randn64({1, 2, 4, 3}, g).requires_grad_();
      Tensor v = randn64({1, 2, 4, 2}, g).requires_grad_();
      nn::AttentionOptions o;
      o.need_weights = true;
      o.causal = true;
      REQUIRE(gradcheck_on(
          dev, [&](const TensorList& in) { return both(nn::scaled_dot_product_attention(in[0], in[1], in[2], o)); },
          {q, k, v}));
    }
  }
}

TEST_CASE("sdpa: a query with every key masked gets zero weights, output and gradients, never NaN",
          "[attention][sdpa][device]") {
  FOR_EACH_TEST_DEVICE(dev) {
    Generator g(5);
    Tensor q = randn({1, 1, 2, 4}, &g).to(dev).requires_grad_(), k = randn({1, 1, 3, 4}, &g).to(dev).requires_grad_();
    Tensor v = randn({1, 1, 3, 2}, &g).to(dev).requires_grad_();
    nn::AttentionOptions o;
    o.need_weights = true;
    o.attn_mask = mask(dev, {true, true, true, false, true, false}, {2, 3});  // query 0 sees nothing
    auto r = nn::scaled_dot_product_attention(q, k, v, o);
    (sum(r.output) + sum(mul(r.weights, r.weights))).backward();
    REQUIRE_FALSE(any_non_finite(r.output));
    REQUIRE_FALSE(any_non_finite(q.grad()));
    REQUIRE_FALSE(any_non_finite(k.grad()));
    REQUIRE_FALSE(any_non_finite(v.grad()));
    auto w = r.weights.to_vector<float>();
    REQUIRE(w[0] == 0.0f);
    REQUIRE(w[1] == 0.0f);
    REQUIRE(w[2] == 0.0f);
    REQUIRE(w[3] + w[5] == Approx(1.0f));
    auto out = r.output.to_vector<float>();
    REQUIRE(out[0] == 0.0f);
    REQUIRE(out[1] == 0.0f);
    auto qg = q.grad().to_vector<float>();
    for (int c = 0; c < 4; ++c) REQUIRE(qg[c] == 0.0f);  // row 0 of q
  }
}

TEST_CASE("sdpa rejects mismatched shapes, masks and heads with clear errors", "[attention][sdpa][errors]") {
  Tensor q = zeros({2, 4, 5, 8}), k = zeros({2, 4, 6, 8}), v = zeros({2, 4, 6, 8});
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(zeros({5, 8}), k, v), Contains("expected q [B, Hq, T, d]"));
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, zeros({2, 4, 6, 7}), v), Contains("shapes do not agree"));
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, zeros({2, 3, 6, 8}), zeros({2, 3, 6, 8})),
                      Contains("query heads (4) must be a multiple of key/value heads (3)"));
  nn::AttentionOptions o;
  o.key_padding_mask = zeros({2, 5}, DType::Bool);
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, o),
                      Contains("key_padding_mask must be [B, S] = [2, 6], got [2, 5]"));
  o.key_padding_mask = zeros({2, 6}, DType::UInt8);
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, o), Contains("key_padding_mask must be bool"));
  nn::AttentionOptions m;
  m.attn_mask = zeros({4, 6}, DType::Bool);
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, m), Contains("does not broadcast"));
  nn::AttentionOptions c;
  c.causal = true;
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(zeros({2, 4, 7, 8}), k, v, c),
                      Contains("causal mask needs at least as many keys as queries"));
}

// ---- MultiheadAttention ------------------------------------------------------------

TEST_CASE("MultiheadAttention is projections around sdpa, with PyTorch's parameter names and init",
          "[attention][mha]") {
  Generator g(7);
  nn::MultiheadAttention mha({8, 2}, &g);
  std::vector<std::string> names;
  for (auto& [n, p] : mha.named_parameters()) names.push_back(n);
  REQUIRE(names == std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                                            "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias"});
  // Xavier bound of the packed [3D, D] matrix, zero biases.
  const double bound = std::sqrt(6.0 / (8 + 24));
  REQUIRE(amax(abs(mha.q_proj->weight)).item<double>() <= bound);
  REQUIRE(amax(abs(mha.k_proj->bias)).item<double>() == 0.0);

  Tensor x = randn({3, 5, 8}, &g);
  nn::MultiheadAttentionCall call;
  call.causal = true;
  call.need_weights = true;
  auto r = mha.forward(x, call);
  REQUIRE(r.output.shape() == Shape{3, 5, 8});
  REQUIRE(r.weights.shape() == Shape{3, 2, 5, 5});
  auto heads = [](const Tensor& t) { return t.view({3, 5, 2, 4}).transpose(1, 2); };
  nn::AttentionOptions o;
  o.causal = true;
  Tensor expect = nn::scaled_dot_product_attention(heads(mha.q_proj->forward(x)), heads(mha.k_proj->forward(x)),
                                                   heads(mha.v_proj->forward(x)), o)
                      .output;
  expect = mha.out_proj->forward(expect.transpose(1, 2).reshape({3, 5, 8}));
  REQUIRE(max_diff(r.output, expect) < 1e-6);
}

TEST_CASE("MultiheadAttention gradients of inputs and every parameter pass finite differences",
          "[attention][mha][gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(dev) {
    Generator g(9);
    nn::MultiheadAttentionOptions opt{6, 3};
    opt.num_kv_heads = 1;  // multi-query: k_proj and v_proj are [2, 6]
    opt.kdim = 4;
    nn::MultiheadAttention mha(opt, &g);
    mha.to(DType::Float64);
    mha.to(dev);
    REQUIRE(mha.k_proj->weight.shape() == Shape{2, 4});
    Tensor q = randn64({2, 3, 6}, g).requires_grad_(), mem = randn64({2, 4, 4}, g).requires_grad_();
    Tensor val = randn64({2, 4, 6}, g).requires_grad_();
    nn::MultiheadAttentionCall call;
    call.key_padding_mask = mask(dev, {false, false, false, true, false, true, false, false}, {2, 4});
    call.need_weights = true;
    REQUIRE(gradcheck_on(dev, [&](const TensorList& in) { return both(mha.forward(in[0], in[1], in[2], call)); },
                         {q, mem, val}));
    // Parameters: d(sum(out * r)) / dp against central differences.
    Tensor r = randn64({2, 3, 6}, g).to(dev);
    Tensor qd = q.detach().to(dev), memd = mem.detach().to(dev), vald = val.detach().to(dev);
    auto loss = [&] { return sum(mul(mha.forward(qd, memd, vald, call).output, r)); };
    for (auto& [name, p] : mha.named_parameters()) {
      INFO(name);
      check_param_grad(p, loss);
    }
  }
}

TEST_CASE("MultiheadAttention: cached decoding gives the outputs of a full causal pass",
          "[attention][mha][cache][device]") {
  FOR_EACH_TEST_DEVICE(dev) {
    Generator g(13);
    nn::MultiheadAttentionOptions opt{8, 4};
    opt.num_kv_heads = 2;
    nn::MultiheadAttention self_attn(opt, &g), cross_attn({8, 2}, &g);
    self_attn.to(dev);
    cross_attn.to(dev);
    Tensor x = randn({2, 6, 8}, &g).to(dev), memory = randn({2, 4, 8}, &g).to(dev);
    Tensor mem_pad = mask(dev, {false, false, false, true, false, false, false, false}, {2, 4});
    NoGradGuard no_grad;
    nn::MultiheadAttentionCall full;
    full.causal = true;
    Tensor want = self_attn.forward(x, full).output;
    nn::MultiheadAttentionCall cross_full;
    cross_full.key_padding_mask = mem_pad;
    Tensor want_cross = cross_attn.forward(x, memory, memory, cross_full).output;

    nn::KVCache cache, cross_cache;
    std::vector<Tensor> steps, cross_steps;
    // First a two-token prompt, then one token at a time.
    for (int64_t t = 0; t < 6;) {
      const int64_t n = t == 0 ? 2 : 1;
      Tensor xt = x.narrow(1, t, n);
      nn::MultiheadAttentionCall c;
      c.causal = true;
      c.cache = &cache;
      steps.push_back(self_attn.forward(xt, c).output);
      REQUIRE(cache.length() == t + n);
      REQUIRE(cache.k.device() == dev);
      nn::MultiheadAttentionCall cc;
      cc.key_padding_mask = mem_pad;
      cc.cache = &cross_cache;
      cc.static_kv = true;
      // After the first step the memory is not needed any more.
      cross_steps.push_back(t == 0 ? cross_attn.forward(xt, memory, memory, cc).output
                                   : cross_attn.forward(xt, Tensor(), Tensor(), cc).output);
      REQUIRE(cross_cache.length() == 4);
      t += n;
    }
    REQUIRE(max_diff(cat(steps, 1), want) < 1e-5);
    REQUIRE(max_diff(cat(cross_steps, 1), want_cross) < 1e-5);
  }
}

TEST_CASE("MultiheadAttention rejects bad options and inputs naming the layer and shapes", "[attention][mha][errors]") {
  REQUIRE_THROWS_WITH(nn::MultiheadAttention({10, 4}), Contains("MultiheadAttention: embed_dim (10) must be divisible by num_heads (4)"));
  nn::MultiheadAttentionOptions o{8, 4};
  o.num_kv_heads = 3;
  REQUIRE_THROWS_WITH(nn::MultiheadAttention(o), Contains("num_heads (4) must be a multiple of num_kv_heads (3)"));
  nn::MultiheadAttention mha({8, 2});
  REQUIRE_THROWS_WITH(mha.forward(zeros({2, 5, 6})), Contains("MultiheadAttention: expected query [B, L, 8] (embed_dim 8), got shape [2, 5, 6]"));
  REQUIRE_THROWS_WITH(mha.forward(zeros({2, 5, 8}), zeros({3, 4, 8}), zeros({3, 4, 8})), Contains("must share the batch"));
  nn::MultiheadAttentionCall c;
  c.key_padding_mask = zeros({2, 4}, DType::Bool);
  REQUIRE_THROWS_WITH(mha.forward(zeros({2, 5, 8}), c),
                      Contains("MultiheadAttention (query [2, 5, 8], 5 keys): scaled_dot_product_attention: "
                               "key_padding_mask must be [B, S] = [2, 5], got [2, 4]"));
}

// ---- studying attention ----------------------------------------------------------

TEST_CASE("Recorded attention weights carry the gradient of the loss, checked by finite differences",
          "[attention][recording]") {
  Generator g(21);
  nn::TransformerLayerOptions lo{6, 2, 12, 0.0};
  nn::TransformerEncoder model(lo, 2, true, &g);
  model.to(DType::Float64);
  Tensor x = randn64({2, 4, 6}, g), r = randn64({2, 4, 6}, g);
  nn::EncoderLayerCall call;
  call.key_padding_mask = from_vector<bool>({false, false, false, true, false, false, false, false}, {2, 4});
  REQUIRE(nn::set_attention_recording(model, true) == 2);
  auto loss = [&] { return sum(mul(model.forward(x, call), r)); };
  loss().backward();
  auto recorded = nn::recorded_attention(model);
  REQUIRE(recorded.size() == 2);
  REQUIRE(recorded[0].name == "layers.0.self_attn");
  REQUIRE(recorded[1].name == "layers.1.self_attn");
  // The first layer's weights influence the loss through the second layer as
  // well: perturb one weight at a time with a hook and difference the loss.
  for (auto& rec : recorded) {
    INFO(rec.name);
    REQUIRE(rec.weights.shape() == Shape{2, 2, 4, 4});
    REQUIRE(rec.grad.defined());
    auto* mha = dynamic_cast<nn::MultiheadAttention*>(
        [&]() -> nn::Module* {
          for (auto& [p, m] : model.named_modules())
            if (p == rec.name) return m;
          return nullptr;
        }());
    REQUIRE(mha != nullptr);
    auto analytic = rec.grad.contiguous().to_vector<double>();
    for (int64_t e = 0; e < rec.weights.numel(); e += 3) {
      auto perturbed = [&](double delta) {
        mha->set_weights_hook([&](const Tensor& w) {
          Tensor bump = zeros(w.shape(), DType::Float64);
          bump.data_ptr<double>()[e] = delta;
          return add(w, bump);
        });
        NoGradGuard ng;
        double l = loss().item<double>();
        mha->set_weights_hook(nullptr);
        return l;
      };
      const double numeric = (perturbed(1e-6) - perturbed(-1e-6)) / 2e-6;
      INFO("entry " << e);
      REQUIRE(analytic[e] == Approx(numeric).margin(1e-6).epsilon(1e-4));
    }
  }
  nn::set_attention_recording(model, false);
}
