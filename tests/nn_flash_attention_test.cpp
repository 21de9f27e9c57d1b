// The fused attention op (FlashAttention-2) against the composed one: values,
// gradients of q, k, v and of the weights on request, across every mask kind,
// grouped heads, odd lengths, T != S, one-query decoding, fully masked rows,
// dropout and second derivatives; gradcheck in float64; the same bits for
// any thread count; and how the implementation is chosen.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <heed.h>

#include "nn/flash_attention.h"
#include "tensor/cpu/parallel.h"
#include "test_devices.h"

using namespace heed;
using Catch::Contains;

namespace {

struct Case {
  std::string name;
  int64_t B = 2, Hq = 2, Hkv = 2, T = 5, S = 5, d = 8, dv = 8;
  std::function<void(nn::AttentionOptions&, Generator&, Device)> set = nullptr;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"no mask"});
  c.push_back({"causal", 2, 2, 2, 7, 7, 8, 8, [](auto& o, auto&, Device) { o.causal = true; }});
  c.push_back({"causal, T < S (a cache)", 1, 2, 2, 5, 9, 8, 6, [](auto& o, auto&, Device) { o.causal = true; }});
  c.push_back({"one query against 37 keys", 2, 2, 1, 1, 37, 16, 16, [](auto& o, auto&, Device) { o.causal = true; }});
  c.push_back({"sliding window, causal", 1, 2, 2, 150, 150, 8, 8, [](auto& o, auto&, Device) {
                 o.causal = true;
                 o.window = 20;
               }});
  c.push_back({"sliding window, both sides", 1, 1, 1, 140, 140, 8, 8, [](auto& o, auto&, Device) { o.window = 30; }});
  c.push_back({"window with global tokens", 1, 2, 2, 140, 140, 8, 8, [](auto& o, auto&, Device) {
                 o.window = 8;
                 o.global_positions = {0, 70, 139};
               }});
  c.push_back({"window with global tokens, more queries than keys", 1, 2, 2, 40, 30, 8, 8, [](auto& o, auto&, Device) {
                 o.window = 6;  // queries 0..9 sit before the first key position: never global
                 o.global_positions = {0, 25};
               }});
  c.push_back({"block-sparse layout", 1, 2, 2, 100, 130, 8, 8, [](auto& o, auto&, Device dev) {
                 // blocks of 16: [7, 9]; a diagonal band plus the first key block
                 std::vector<uint8_t> l(7 * 9, 0);
                 for (int i = 0; i < 7; ++i) {
                   l[i * 9] = 1;
                   l[i * 9 + i] = 1;
                   l[i * 9 + i + 1] = 1;
                 }
                 o.block_layout = from_vector<uint8_t>(l, {7, 9}).to(DType::Bool).to(dev);
                 o.block_size = 16;
               }});
  c.push_back({"broadcast [T, S] mask", 2, 2, 2, 6, 9, 8, 8, [](auto& o, Generator& g, Device dev) {
                 o.attn_mask = gt(rand({6, 9}, &g), scalar_tensor(0.6)).to(dev);
               }});
  c.push_back({"per-head mask and key padding with a fully padded row", 2, 2, 2, 4, 6, 8, 8,
               [](auto& o, Generator& g, Device dev) {
                 o.attn_mask = gt(rand({2, 2, 4, 6}, &g), scalar_tensor(0.7)).to(dev);
                 std::vector<bool> pad(12, false);
                 for (int j = 0; j < 6; ++j) pad[6 + j] = true;  // batch 1: every key is padding
                 pad[4] = pad[5] = true;
                 o.key_padding_mask = from_vector<bool>(pad, {2, 6}).to(dev);
               }});
  c.push_back({"grouped-query 4 / 2", 2, 4, 2, 9, 9, 8, 8, [](auto& o, auto&, Device) { o.causal = true; }});
  c.push_back({"multi-query 4 / 1, causal T < S", 1, 4, 1, 70, 75, 8, 8, [](auto& o, auto&, Device) { o.causal = true; }});
  c.push_back({"odd lengths across tiles", 1, 2, 2, 67, 131, 40, 24, [](auto& o, auto&, Device) { o.causal = true; }});
  // Head widths of a full micro-kernel tile and more: the backward's dV and dK
  // then read the score tiles in place (tensor/cpu/cpu_attention.cpp).
  c.push_back({"head width 64 across tiles, causal", 1, 2, 2, 140, 150, 64, 64,
               [](auto& o, auto&, Device) { o.causal = true; }});
  c.push_back({"head widths 96 and 80, sliding window across tiles", 1, 4, 2, 200, 200, 96, 80,
               [](auto& o, auto&, Device) {
                 o.causal = true;
                 o.window = 70;
               }});
  c.push_back({"custom scale", 1, 2, 2, 5, 6, 8, 8, [](auto& o, auto&, Device) { o.scale = 0.3; }});
  return c;
}

struct Run {
  Tensor out, weights, weights_grad, gq, gk, gv;
};

// Forward with need_weights, a loss that reads both the output and the
// weights, backward; returns everything on the CPU in float64.
Run run(const Case& c, nn::AttentionImpl impl, DType dtype, Device dev, bool strided_q, bool dropout = false) {
  Generator g(1234);
  Tensor q = strided_q ? randn({c.B, c.T, c.Hq, c.d}, &g, DType::Float64).transpose(1, 2)
                       : randn({c.B, c.Hq, c.T, c.d}, &g, DType::Float64);
  Tensor k = randn({c.B, c.Hkv, c.S, c.d}, &g, DType::Float64);
  Tensor v = randn({c.B, c.Hkv, c.S, c.dv}, &g, DType::Float64);
  Tensor go = randn({c.B, c.Hq, c.T, c.dv}, &g, DType::Float64);
  Tensor gw = randn({c.B, c.Hq, c.T, c.S}, &g, DType::Float64);
  nn::AttentionOptions o;
  if (c.set) c.set(o, g, dev);
  auto leaf = [&](const Tensor& t) { return t.to(dtype).to(dev).detach().requires_grad_(); };
  Tensor qd = strided_q ? leaf(q.contiguous()).transpose(1, 2) : Tensor();
  Tensor ql = strided_q ? Tensor() : leaf(q), kl = leaf(k), vl = leaf(v);
  if (strided_q) {  // a leaf in [B, T, H, d], viewed as [B, H, T, d] (MultiheadAttention's layout)
    ql = leaf(q.transpose(1, 2).contiguous());
    qd = ql.transpose(1, 2);
  }
  o.need_weights = true;
  o.impl = impl;
  Generator drop(99);
  if (dropout) {
    o.dropout_p = 0.3;
    o.generator = &drop;
  }
  nn::AttentionOutput r = nn::scaled_dot_product_attention(strided_q ? qd : ql, kl, vl, o);
  REQUIRE(r.fused == (impl == nn::AttentionImpl::Fused));
  r.weights.retain_grad();
  if (r.fused) r.output.retain_grad();
  Tensor loss = add(sum(mul(r.output, go.to(dtype).to(dev))), mul(sum(mul(r.weights, gw.to(dtype).to(dev))), 0.5));
  loss.backward();
  auto host = [](const Tensor& t) { return t.to(kCPU).to(DType::Float64); };
  Run out;
  out.out = host(r.output.detach());
  out.weights = host(r.weights.detach());
  out.weights_grad = host(nn::attention_weights_grad(r, vl));
  out.gq = host(ql.grad());
  out.gk = host(kl.grad());
  out.gv = host(vl.grad());
  return out;
}

void require_close(const Tensor& got, const Tensor& want, double tol, const char* what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  auto a = got.contiguous().to_vector<double>(), b = want.contiguous().to_vector<double>();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE_FALSE(std::isnan(a[i]));
    const double err = std::abs(a[i] - b[i]) / (1.0 + std::abs(b[i]));
    if (err > worst) worst = err, at = i;
  }
  INFO("worst element " << at << ": " << (a.empty() ? 0 : a[at]) << " vs " << (b.empty() ? 0 : b[at]));
  REQUIRE(worst <= tol);
}

void require_same_run(const Run& f, const Run& c, double tol) {
  require_close(f.out, c.out, tol, "output");
  require_close(f.weights, c.weights, tol, "weights");
  require_close(f.weights_grad, c.weights_grad, tol, "d loss / d weights");
  require_close(f.gq, c.gq, tol, "grad q");
  require_close(f.gk, c.gk, tol, "grad k");
  require_close(f.gv, c.gv, tol, "grad v");
}

}  // namespace

TEST_CASE("Fused attention equals the composed path in values and gradients, for every mask kind",
          "[attention][flash]") {
  FOR_EACH_TEST_DEVICE(device) {
    const std::vector<DType> dtypes =
        device.is_cpu() ? std::vector<DType>{DType::Float64, DType::Float32} : std::vector<DType>{DType::Float32};
    for (DType dtype : dtypes)
      for (const Case& c : cases()) {
        INFO(c.name << ", " << dtype_name(dtype));
        const double tol = dtype == DType::Float64 ? 1e-10 : 2e-4;
        for (bool strided : {false, true}) {
          INFO("q strided: " << strided);
          Run f = run(c, nn::AttentionImpl::Fused, dtype, device, strided);
          Run ref = run(c, nn::AttentionImpl::Composed, dtype, device, strided);
          require_same_run(f, ref, tol);
        }
      }
  }
}

TEST_CASE("Fused attention on the GPU equals the CPU's, in float32 and bfloat16", "[attention][flash][cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::Float32, DType::BFloat16})
    for (const Case& c : cases()) {
      INFO(c.name << ", " << dtype_name(dtype));
      Run gpu = run(c, nn::AttentionImpl::Fused, dtype, kCUDA, false);
      Run cpu = run(c, nn::AttentionImpl::Fused, dtype, kCPU, false);
      require_same_run(gpu, cpu, dtype == DType::BFloat16 ? 3e-2 : 2e-4);
    }
}

TEST_CASE("Fused attention in bfloat16 on the CPU is the float32 result to bfloat16's precision",
          "[attention][flash][bfloat16]") {
  for (const Case& c : cases()) {
    INFO(c.name);
    Run b = run(c, nn::AttentionImpl::Fused, DType::BFloat16, kCPU, false);
    Run f = run(c, nn::AttentionImpl::Composed, DType::Float32, kCPU, false);
    require_close(b.out, f.out, 3e-2, "output");
    require_close(b.gq, f.gq, 6e-2, "grad q");
    require_close(b.gk, f.gk, 6e-2, "grad k");
    require_close(b.gv, f.gv, 6e-2, "grad v");
  }
}

TEST_CASE("Fused attention drops the same weights as the composed path", "[attention][flash][dropout]") {
  FOR_EACH_TEST_DEVICE(device) {
    for (const Case& c : cases()) {
      INFO(c.name);
      Run f = run(c, nn::AttentionImpl::Fused, DType::Float64, device, false, true);
      Run ref = run(c, nn::AttentionImpl::Composed, DType::Float64, device, false, true);
      require_same_run(f, ref, 1e-10);
    }
  }
}

TEST_CASE("A query whose keys are all masked gets a zero output and zero gradients on the fused path",
          "[attention][flash]") {
  FOR_EACH_TEST_DEVICE(device) {
    Generator g(5);
    Tensor q = randn({1, 2, 3, 4}, &g).to(device).requires_grad_();
    Tensor k = randn({1, 2, 5, 4}, &g).to(device).requires_grad_();
    Tensor v = randn({1, 2, 5, 4}, &g).to(device).requires_grad_();
    nn::AttentionOptions o;
    o.attn_mask = from_vector<bool>({true, true, true, true, true}, {1, 5}).to(device).expand({3, 5});
    o.impl = nn::AttentionImpl::Fused;
    o.need_weights = true;
    nn::AttentionOutput r = nn::scaled_dot_product_attention(q, k, v, o);
    sum(r.output).backward();
    for (const Tensor& t : {r.output, r.weights, q.grad(), k.grad(), v.grad()})
      for (float x : t.to(kCPU).contiguous().to_vector<float>()) REQUIRE(x == 0.0f);
  }
}

TEST_CASE("Fused attention passes gradcheck and gradgradcheck in float64", "[attention][flash][gradcheck]") {
  Generator g(8);
  Tensor q = randn({1, 4, 6, 3}, &g, DType::Float64).requires_grad_();
  Tensor k = randn({1, 2, 7, 3}, &g, DType::Float64).requires_grad_();
  Tensor v = randn({1, 2, 7, 5}, &g, DType::Float64).requires_grad_();
  for (int kind = 0; kind < 3; ++kind) {
    nn::AttentionOptions o;
    o.impl = nn::AttentionImpl::Fused;
    o.causal = kind >= 1;
    o.window = kind == 2 ? 3 : 0;
    INFO("kind " << kind);
    auto fn = [&](const TensorList& x) { return nn::scaled_dot_product_attention(x[0], x[1], x[2], o).output; };
    REQUIRE(gradcheck(fn, {q, k, v}));
    REQUIRE(gradgradcheck(fn, {q, k, v}));
    auto weights = [&](const TensorList& x) {
      nn::AttentionOptions w = o;
      w.need_weights = true;
      return nn::scaled_dot_product_attention(x[0], x[1], x[2], w).weights;
    };
    REQUIRE(gradcheck(weights, {q, k, v}));
  }
}

TEST_CASE("Fused attention gives the same bits for any number of threads", "[attention][flash][threads]") {
  const int before = cpu::num_threads();
  Case c{"threads", 2, 4, 2, 150, 170, 64, 80, [](auto& o, auto&, Device) { o.causal = true; }};
  std::vector<Run> runs;
  for (int threads : {1, 2, 3}) {
    cpu::set_num_threads(threads);
    runs.push_back(run(c, nn::AttentionImpl::Fused, DType::Float32, kCPU, true));
  }
  cpu::set_num_threads(before);
  for (size_t i = 1; i < runs.size(); ++i) {
    for (auto [a, b] : {std::pair{runs[0].out, runs[i].out}, std::pair{runs[0].gq, runs[i].gq},
                        std::pair{runs[0].gk, runs[i].gk}, std::pair{runs[0].gv, runs[i].gv}})
      REQUIRE(a.to_vector<double>() == b.to_vector<double>());
  }
}

TEST_CASE("The attention implementation is chosen by the options, the process default and the hook",
          "[attention][flash]") {
  Generator g(3);
  Tensor q = randn({1, 1, 3, 4}, &g), k = randn({1, 1, 3, 4}, &g), v = randn({1, 1, 3, 4}, &g);
  nn::AttentionOptions o;
  REQUIRE(nn::resolve_attention_impl(o, kCPU) == nn::AttentionImpl::Fused);
  REQUIRE(nn::scaled_dot_product_attention(q, k, v, o).fused);
  o.weights_hook = [](const Tensor& w) { return w; };
  REQUIRE(nn::resolve_attention_impl(o, kCPU) == nn::AttentionImpl::Composed);
  o.impl = nn::AttentionImpl::Fused;
  REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, o), Contains("weights_hook"));
  o = {};
  const nn::AttentionImpl before = nn::default_attention_impl();
  nn::set_default_attention_impl(nn::AttentionImpl::Composed);
  REQUIRE_FALSE(nn::scaled_dot_product_attention(q, k, v, o).fused);
  o.impl = nn::AttentionImpl::Fused;
  REQUIRE(nn::scaled_dot_product_attention(q, k, v, o).fused);
  nn::set_default_attention_impl(before);
  // Bad patterns are named on either path.
  for (auto impl : {nn::AttentionImpl::Fused, nn::AttentionImpl::Composed}) {
    nn::AttentionOptions bad;
    bad.impl = impl;
    bad.global_positions = {1};
    REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, bad), Contains("set window > 0"));
    bad.window = 2;
    bad.global_positions = {3};
    REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, bad), Contains("global position 3 is outside"));
    bad = {};
    bad.impl = impl;
    bad.block_layout = ones({1, 1}, DType::Bool);
    bad.block_size = 2;
    REQUIRE_THROWS_WITH(nn::scaled_dot_product_attention(q, k, v, bad), Contains("layout must be [ceil(T / block)"));
  }
}

TEST_CASE("Pattern options and the dense mask builders mask the same pairs", "[attention][flash][masks]") {
  // window + globals == local_global_mask; layout == block_sparse_mask; checked through both paths.
  Generator g(11);
  const int64_t T = 40;
  Tensor q = randn({1, 1, T, 4}, &g), k = randn({1, 1, T, 4}, &g), v = randn({1, 1, T, 4}, &g);
  nn::AttentionOptions pattern;
  pattern.window = 5;
  pattern.global_positions = {3, 20};
  pattern.causal = true;
  nn::AttentionOptions dense;
  dense.attn_mask = nn::local_global_mask(T, 5, {3, 20}, true);
  Tensor a = nn::scaled_dot_product_attention(q, k, v, pattern).output;
  Tensor b = nn::scaled_dot_product_attention(q, k, v, dense).output;
  require_close(a.to(DType::Float64), b.to(DType::Float64), 1e-6, "local + global");
  Tensor layout = gt(rand({5, 5}, &g), scalar_tensor(0.5));
  nn::AttentionOptions lp;
  lp.block_layout = layout;
  lp.block_size = 8;
  nn::AttentionOptions ld;
  ld.attn_mask = nn::block_sparse_mask(layout, T, T, 8);
  require_close(nn::scaled_dot_product_attention(q, k, v, lp).output.to(DType::Float64),
                nn::scaled_dot_product_attention(q, k, v, ld).output.to(DType::Float64), 1e-6, "block-sparse");
}

TEST_CASE("MultiheadAttention passes patterns through to the kernel", "[attention][flash][mha]") {
  Generator g(12);
  nn::MultiheadAttention mha({16, 4}, &g);
  Tensor x = randn({2, 33, 16}, &g);
  Tensor layout = gt(rand({3, 3}, &g), scalar_tensor(0.3));
  nn::MultiheadAttentionCall pattern, dense;
  pattern.block_layout = layout;
  pattern.block_size = 12;
  pattern.window = 5;
  pattern.global_positions = {0, 20};
  dense.attn_mask = logical_or(nn::block_sparse_mask(layout, 33, 33, 12), nn::local_global_mask(33, 5, {0, 20}));
  // The structural parts combine by "or" of masked pairs on both sides.
  require_close(mha.forward(x, pattern).output.to(DType::Float64), mha.forward(x, dense).output.to(DType::Float64),
                1e-6, "block layout + window + globals");
}
