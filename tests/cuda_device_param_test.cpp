// The core tests of tensor_test, autograd_test, gradcheck_test,
// nn_layers_test, nn_attention_test, nn_transformer_test, nn_loss_test and
// nn_optim_test, written once and run on every device of test_devices()
// (tests/test_devices.h): the CPU always, cuda:0 when a GPU is visible. Each
// body builds its tensors on the device under test and checks the same
// exact values, formulas written out in double, finite differences and
// self-consistency (cached against uncached decoding) as the CPU tests do.
// Without a GPU they run on the CPU only and warn once that CUDA was not
// tested.
//
// gradcheck wants float64 leaves on the CPU, so gradcheck_on() wraps the
// function: it moves the leaves to the device, runs there and brings the
// result back (both moves are differentiable), and the Jacobian checked is
// the device's.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <heed.h>
#include "tests/test_devices.h"

using namespace heed;
using Catch::Matchers::Contains;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
using Vec = std::vector<double>;

Tensor f64(Device d, const Vec& v, const Shape& s = {}) { return from_vector<double>(v, s, d); }
Tensor i64(Device d, const std::vector<int64_t>& v, const Shape& s = {}) { return from_vector<int64_t>(v, s, d); }
Tensor mask(Device d, const std::vector<bool>& v, const Shape& s) { return from_vector<bool>(v, s, d); }
std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }
double max_diff(const Tensor& a, const Tensor& b) { return amax(abs(sub(a, b))).item<double>(); }

void require_close(const Tensor& got, const Vec& want, double tol) {
  Vec g = got.to_vector<double>();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("entry " << i << ": got " << g[i] << ", want " << want[i]);
    REQUIRE(std::abs(g[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}

// gradcheck of f run on `device` (see the top of the file).
bool gradcheck_on(Device device, const std::function<Tensor(const TensorList&)>& f, const TensorList& inputs,
                  const GradcheckOptions& options = {}) {
  return gradcheck(
      [&](const TensorList& in) {
        TensorList moved;
        for (const Tensor& t : in) moved.push_back(t.defined() ? to_device(t, device) : t);
        return to_device(f(moved), kCPU);
      },
      inputs, options);
}

bool gradgradcheck_on(Device device, const std::function<Tensor(const TensorList&)>& f, const TensorList& inputs) {
  return gradgradcheck(
      [&](const TensorList& in) {
        TensorList moved;
        for (const Tensor& t : in) moved.push_back(t.defined() ? to_device(t, device) : t);
        return to_device(f(moved), kCPU);
      },
      inputs);
}

// A float64 CPU leaf for gradcheck.
Tensor leaf64(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  Generator g(seed);
  return uniform(s, lo, hi, &g, DType::Float64).requires_grad_();
}

// p's gradient of loss() against central differences, for a float64
// parameter on any device (bumped in place through the op layer).
void check_param_grad(Tensor& p, const std::function<Tensor()>& loss) {
  p.zero_grad();
  loss().backward();
  REQUIRE(p.grad().defined());
  REQUIRE(p.grad().device() == p.device());
  const Vec analytic = p.grad().to_vector<double>();
  const double eps = 1e-6;
  for (int64_t i = 0; i < p.numel(); ++i) {
    Vec one(static_cast<size_t>(p.numel()), 0.0);
    one[static_cast<size_t>(i)] = 1.0;
    Tensor bump = from_vector<double>(one, p.shape(), p.device());
    double lp, lm;
    {
      NoGradGuard no_grad;
      p.add_(bump, eps);
      lp = loss().item<double>();
      p.add_(bump, -2 * eps);
      lm = loss().item<double>();
      p.add_(bump, eps);
    }
    INFO("entry " << i);
    REQUIRE(analytic[static_cast<size_t>(i)] == Approx((lp - lm) / (2 * eps)).margin(1e-6).epsilon(1e-4));
  }
}

}  // namespace

// ---- attention -----------------------------------------------------------------------

namespace {
// Attention entry by entry in double: scores q.k / sqrt(d), masked keys
// skipped, softmax, weighted sum. Returns out and weights.
template <class Masked>
std::pair<Vec, Vec> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, Masked masked) {
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), dk = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), dv = v.size(3), G = Hq / Hkv;
  const Vec qv = q.to_vector<double>(), kv = k.to_vector<double>(), vv = v.to_vector<double>();
  Vec out(B * Hq * T * dv, 0.0), w(B * Hq * T * S, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < T; ++i) {
        Vec s(S, -INFINITY);
        double m = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          if (masked(b, h, i, j)) continue;
          double dot = 0;
          for (int64_t c = 0; c < dk; ++c)
            dot += qv[((b * Hq + h) * T + i) * dk + c] * kv[((b * Hkv + h / G) * S + j) * dk + c];
          s[j] = dot / std::sqrt(static_cast<double>(dk));
          m = std::max(m, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < S; ++j) z += std::isinf(s[j]) ? 0 : std::exp(s[j] - m);
        for (int64_t j = 0; j < S; ++j) {
          const double p = std::isinf(s[j]) ? 0 : std::exp(s[j] - m) / z;
          w[((b * Hq + h) * T + i) * S + j] = p;
          for (int64_t c = 0; c < dv; ++c)
            out[((b * Hq + h) * T + i) * dv + c] += p * vv[((b * Hkv + h / G) * S + j) * dv + c];
        }
      }
  return {out, w};
}

Tensor both(const nn::AttentionOutput& a) { return cat({a.output.flatten(), a.weights.flatten()}); }
}  // namespace

TEST_CASE("on every device: sdpa matches attention written entry by entry, for every mask kind",
          "[device][attention]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(11);
    const int64_t B = 2, H = 4, T = 5, S = 6, dk = 3, dv = 2;
    auto rnd = [&](const Shape& s) { return randn(s, &g, DType::Float64).to(d); };
    Tensor q = rnd({B, H, T, dk}), k = rnd({B, H, S, dk}), v = rnd({B, H, S, dv});
    {
      nn::AttentionOptions o;
      o.need_weights = true;
      auto r = nn::scaled_dot_product_attention(q, k, v, o);
      REQUIRE(r.output.device() == d);
      auto [out, w] = naive_attention(q, k, v, [](auto...) { return false; });
      require_close(r.output, out, 1e-10);
      require_close(r.weights, w, 1e-10);
    }
    {
      const std::vector<bool> kp = {false, false, true, false, false, true, false, false, false, false, true, true};
      Tensor extra = nn::sliding_window_mask(T, S, 3, false, d);
      REQUIRE(extra.device() == d);
      nn::AttentionOptions o;
      o.key_padding_mask = mask(d, kp, {B, S});
      o.attn_mask = extra;
      o.need_weights = true;
      const std::vector<int64_t> ev = extra.to(DType::Int64).to_vector<int64_t>();
      auto r = nn::scaled_dot_product_attention(q, k, v, o);
      auto [out, w] = naive_attention(
          q, k, v, [&](int64_t b, int64_t, int64_t i, int64_t j) { return kp[b * S + j] || ev[i * S + j]; });
      require_close(r.output, out, 1e-10);
      require_close(r.weights, w, 1e-10);
    }
    {
      Tensor qg = rnd({B, 8, 7, dk}), kg = rnd({B, 2, 7, dk}), vg = rnd({B, 2, 7, dv});
      nn::AttentionOptions o;
      o.causal = true;
      o.window = 3;
      o.need_weights = true;
      auto r = nn::scaled_dot_product_attention(qg, kg, vg, o);
      auto [out, w] =
          naive_attention(qg, kg, vg, [](int64_t, int64_t, int64_t i, int64_t j) { return j > i || j <= i - 3; });
      require_close(r.output, out, 1e-10);
      require_close(r.weights, w, 1e-10);
    }
  }
}

TEST_CASE("on every device: sdpa with every key of a query masked gives zeros and finite gradients",
          "[device][attention]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(5);
    Tensor q = randn({1, 1, 2, 4}, &g).to(d).requires_grad_(), k = randn({1, 1, 3, 4}, &g).to(d).requires_grad_();
    Tensor v = randn({1, 1, 3, 2}, &g).to(d).requires_grad_();
    nn::AttentionOptions o;
    o.need_weights = true;
    o.attn_mask = mask(d, {true, true, true, false, true, false}, {2, 3});  // query 0 sees nothing
    auto r = nn::scaled_dot_product_attention(q, k, v, o);
    (sum(r.output) + sum(mul(r.weights, r.weights))).backward();
    for (const Tensor& t : {r.output, q.grad(), k.grad(), v.grad()}) REQUIRE_FALSE(any_non_finite(t));
    std::vector<float> w = vals(r.weights), out = vals(r.output), qg = vals(q.grad());
    REQUIRE((w[0] == 0.0f && w[1] == 0.0f && w[2] == 0.0f));
    REQUIRE(w[3] + w[5] == Approx(1.0f));
    REQUIRE((out[0] == 0.0f && out[1] == 0.0f));
    for (int c = 0; c < 4; ++c) REQUIRE(qg[c] == 0.0f);
  }
}

TEST_CASE("on every device: sdpa and MultiheadAttention pass gradcheck", "[device][attention][gradcheck]") {
  FOR_EACH_TEST_DEVICE(d) {
    nn::AttentionOptions o;
    o.need_weights = true;
    o.key_padding_mask = mask(d, {false, true, false, false, false, false, false, false, true, true}, {2, 5});
    REQUIRE(gradcheck_on(
        d, [&](const TensorList& in) { return both(nn::scaled_dot_product_attention(in[0], in[1], in[2], o)); },
        {leaf64({2, 2, 3, 4}, 1), leaf64({2, 2, 5, 4}, 2), leaf64({2, 2, 5, 3}, 3)}));
    nn::AttentionOptions causal;
    causal.need_weights = true;
    causal.causal = true;
    REQUIRE(gradcheck_on(
        d, [&](const TensorList& in) { return both(nn::scaled_dot_product_attention(in[0], in[1], in[2], causal)); },
        {leaf64({1, 4, 4, 3}, 4), leaf64({1, 2, 4, 3}, 5), leaf64({1, 2, 4, 2}, 6)}));

    Generator g(9);
    nn::MultiheadAttentionOptions opt{6, 3};
    opt.num_kv_heads = 1;
    opt.kdim = 4;
    nn::MultiheadAttention mha(opt, &g);
    mha.to(DType::Float64);
    mha.to(d);
    nn::MultiheadAttentionCall call;
    call.key_padding_mask = mask(d, {false, false, false, true, false, true, false, false}, {2, 4});
    call.need_weights = true;
    REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return both(mha.forward(in[0], in[1], in[2], call)); },
                         {leaf64({2, 3, 6}, 7), leaf64({2, 4, 4}, 8), leaf64({2, 4, 6}, 9)}));
    Tensor q = randn({2, 3, 6}, &g, DType::Float64).to(d), mem = randn({2, 4, 4}, &g, DType::Float64).to(d);
    Tensor val = randn({2, 4, 6}, &g, DType::Float64).to(d), r = randn({2, 3, 6}, &g, DType::Float64).to(d);
    check_param_grad(mha.k_proj->weight, [&] { return sum(mul(mha.forward(q, mem, val, call).output, r)); });
    check_param_grad(mha.out_proj->bias, [&] { return sum(mul(mha.forward(q, mem, val, call).output, r)); });
  }
}

TEST_CASE("on every device: MultiheadAttention cached decoding gives the outputs of a full causal pass",
          "[device][attention][cache]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(13);
    nn::MultiheadAttentionOptions opt{8, 4};
    opt.num_kv_heads = 2;
    nn::MultiheadAttention self_attn(opt, &g), cross_attn({8, 2}, &g);
    self_attn.to(d);
    cross_attn.to(d);
    Tensor x = randn({2, 6, 8}, &g).to(d), memory = randn({2, 4, 8}, &g).to(d);
    Tensor mem_pad = mask(d, {false, false, false, true, false, false, false, false}, {2, 4});
    NoGradGuard no_grad;
    nn::MultiheadAttentionCall full;
    full.causal = true;
    Tensor want = self_attn.forward(x, full).output;
    nn::MultiheadAttentionCall cross_full;
    cross_full.key_padding_mask = mem_pad;
    Tensor want_cross = cross_attn.forward(x, memory, memory, cross_full).output;
    nn::KVCache cache, cross_cache;
    std::vector<Tensor> steps, cross_steps;
    for (int64_t t = 0; t < 6;) {
      const int64_t n = t == 0 ? 2 : 1;  // a two-token prompt, then one token at a time
      Tensor xt = x.narrow(1, t, n);
      nn::MultiheadAttentionCall c;
      c.causal = true;
      c.cache = &cache;
      steps.push_back(self_attn.forward(xt, c).output);
      REQUIRE(cache.length() == t + n);
      REQUIRE(cache.k.device() == d);
      nn::MultiheadAttentionCall cc;
      cc.key_padding_mask = mem_pad;
      cc.cache = &cross_cache;
      cc.static_kv = true;
      cross_steps.push_back(t == 0 ? cross_attn.forward(xt, memory, memory, cc).output
                                   : cross_attn.forward(xt, Tensor(), Tensor(), cc).output);
      t += n;
    }
    REQUIRE(max_diff(cat(steps, 1), want) < 1e-5);
    REQUIRE(max_diff(cat(cross_steps, 1), want_cross) < 1e-5);
  }
}

// ---- transformers --------------------------------------------------------------------

TEST_CASE("on every device: transformer layers pass gradcheck, pre-norm and post-norm",
          "[device][transformer][gradcheck]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(2);
    for (bool norm_first : {false, true}) {
      INFO("norm_first " << norm_first);
      nn::TransformerLayerOptions o{4, 2, 6, 0.0, norm_first ? nn::Activation::GELU : nn::Activation::ReLU};
      o.norm_first = norm_first;
      nn::TransformerEncoderLayer enc(o, &g);
      nn::TransformerDecoderLayer dec(o, &g);
      for (nn::Module* m : {static_cast<nn::Module*>(&enc), static_cast<nn::Module*>(&dec)}) {
        m->to(DType::Float64);
        m->to(d);
      }
      nn::EncoderLayerCall ec;
      ec.key_padding_mask = mask(d, {false, false, true, false, false, false}, {2, 3});
      REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return enc.forward(in[0], ec); }, {leaf64({2, 3, 4}, 1)}));
      nn::DecoderLayerCall dc;
      dc.memory_key_padding_mask = ec.key_padding_mask;
      dc.causal = true;
      REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return dec.forward(in[0], in[1], dc); },
                           {leaf64({2, 2, 4}, 2), leaf64({2, 3, 4}, 3)}));
    }
  }
}

TEST_CASE("on every device: cached decoding of a decoder stack, a GPT and a Seq2SeqTransformer equals full passes",
          "[device][transformer][cache]") {
  FOR_EACH_TEST_DEVICE(d) {
    NoGradGuard ng;
    {
      Generator g(4);
      nn::TransformerDecoder dec({8, 2, 16, 0.0}, 2, true, &g);
      dec.to(d);
      Tensor tgt = randn({2, 5, 8}, &g).to(d), memory = randn({2, 3, 8}, &g).to(d);
      nn::DecoderLayerCall call;
      call.memory_key_padding_mask = mask(d, {false, false, true, false, false, false}, {2, 3});
      call.causal = true;
      Tensor want = dec.forward(tgt, memory, call);
      nn::DecoderCache cache;
      std::vector<Tensor> steps;
      for (int64_t t = 0; t < 5; ++t) steps.push_back(dec.forward(tgt.narrow(1, t, 1), memory, call, &cache));
      REQUIRE(cache.length() == 5);
      REQUIRE(max_diff(cat(steps, 1), want) < 1e-5);
    }
    for (bool rotary : {false, true}) {
      INFO("GPT, rotary " << rotary);
      Generator g(6);
      nn::GPTOptions o{11, 8, 8, 2, 2};
      o.rotary = rotary;
      nn::GPT gpt(o, &g);
      gpt.to(d);
      const std::vector<int64_t> idv = {1, 5, 2, 7, 3, 0, 4, 4, 9, 10, 2, 6};
      Tensor ids = i64(d, idv, {2, 6});
      Tensor full = gpt.forward(ids);
      REQUIRE(full.device() == d);
      nn::GPTCache cache;
      std::vector<Tensor> steps{gpt.forward(ids.narrow(1, 0, 3), &cache)};
      for (int64_t t = 3; t < 6; ++t) steps.push_back(gpt.forward(ids.narrow(1, t, 1), &cache));
      REQUIRE(max_diff(cat(steps, 1), full) < 1e-5);
      // Causality: changing the last token leaves earlier logits alone (up to
      // rounding: a GPU reduction need not be bit-reproducible).
      std::vector<int64_t> changed = idv;
      changed[5] = 8;
      REQUIRE(max_diff(gpt.forward(i64(d, changed, {2, 6})).narrow(1, 0, 5), full.narrow(1, 0, 5)) < 1e-6);
    }
    {
      Generator g(10);
      nn::Seq2SeqOptions o{11, 13};
      o.d_model = 8, o.nhead = 2, o.num_encoder_layers = 2, o.num_decoder_layers = 2, o.dim_feedforward = 16;
      o.dropout = 0.0;
      nn::Seq2SeqTransformer model(o, &g);
      model.to(d);
      Tensor src = i64(d, {4, 5, 6, 2, 0, 0, 7, 8, 3, 9, 10, 2}, {2, 6});
      Tensor src_pad = nn::padding_mask(src, 0);
      Tensor tgt = i64(d, {1, 5, 6, 7, 1, 8, 9, 12}, {2, 4});
      Tensor logits = model.forward(src, tgt, src_pad);
      REQUIRE(logits.shape() == Shape{2, 4, 13});
      Tensor memory = model.encode(src, src_pad);
      nn::DecoderCache cache;
      std::vector<Tensor> steps;
      for (int64_t t = 0; t < 4; ++t) steps.push_back(model.decode(tgt.narrow(1, t, 1), memory, src_pad, {}, &cache));
      REQUIRE(max_diff(cat(steps, 1), logits) < 1e-5);
      // Padding the source further changes nothing.
      Tensor src_more = cat({src, zeros({2, 2}, DType::Int64, d)}, 1);
      REQUIRE(max_diff(model.forward(src_more, tgt, nn::padding_mask(src_more, 0)), logits) < 1e-5);
      // Greedy decoding with the cache gives the argmax path of full passes.
      nn::DecodeOptions dopt;
      dopt.max_len = 5;
      dopt.eos_id = 12;  // any id; decoding stops there or at max_len
      auto hyps = nn::greedy_decode(model, src, src_pad, dopt);
      REQUIRE(hyps.size() == 2);
      for (int64_t b = 0; b < 2; ++b) {
        std::vector<int64_t> prefix{dopt.bos_id};
        for (int64_t tok : hyps[b]) {
          Tensor step_logits = model.forward(
              src.narrow(0, b, 1), i64(d, prefix, {1, static_cast<int64_t>(prefix.size())}), src_pad.narrow(0, b, 1));
          REQUIRE(argmax(step_logits.select(1, -1), -1).item<int64_t>() == tok);
          prefix.push_back(tok);
        }
      }
    }
  }
}

TEST_CASE("on every device: a Seq2SeqTransformer step gives every parameter a finite gradient",
          "[device][transformer]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(10);
    nn::Seq2SeqOptions o{11, 13};
    o.d_model = 8, o.nhead = 2, o.num_encoder_layers = 1, o.num_decoder_layers = 2, o.dim_feedforward = 16;
    o.dropout = 0.1;
    nn::Seq2SeqTransformer model(o, &g);
    model.to(d);
    Tensor src = i64(d, {4, 5, 6, 2, 0, 0, 7, 8, 3, 9, 10, 2}, {2, 6});
    Tensor tgt_in = i64(d, {1, 5, 6, 7, 1, 8, 9, 12}, {2, 4});
    Tensor tgt_out = i64(d, {5, 6, 7, 2, 8, 9, 12, 0}, {2, 4});
    Tensor logits = model.forward(src, tgt_in, nn::padding_mask(src, 0));
    Tensor loss = nn::cross_entropy(logits, tgt_out, {0, 0.1});
    REQUIRE(std::isfinite(loss.item<double>()));
    loss.backward();
    for (const auto& [name, p] : model.named_parameters()) {
      INFO(name);
      REQUIRE(p.grad().defined());
      REQUIRE(p.grad().device() == d);
      REQUIRE_FALSE(any_non_finite(p.grad()));
    }
  }
}

TEST_CASE("on every device: a tiny GPT learns a fixed sequence in a few AdamW steps", "[device][transformer][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(3);
    nn::GPTOptions o{13, 8, 16, 2, 2};
    nn::GPT gpt(o, &g);
    gpt.to(d);
    Tensor ids = i64(d, {1, 5, 2, 7, 3, 9, 4, 11}, {1, 8});
    Tensor input = ids.narrow(1, 0, 7), target = ids.narrow(1, 1, 7);
    optim::AdamW opt(gpt.named_parameters(), {1e-2});
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy(gpt.forward(input), target);
      loss.backward();
      optim::clip_grad_norm(gpt.parameters(), 1.0);
      opt.step();
      last = loss.item<double>();
      if (step == 0) first = last;
    }
    INFO("loss " << first << " -> " << last);
    REQUIRE(last < 0.5 * first);
    for (const auto& [name, t] : opt.state()) REQUIRE(t.device() == d);
  }
}

// ---- losses --------------------------------------------------------------------------

TEST_CASE("on every device: cross_entropy equals the formula row by row, and ignored rows stay out", "[device][loss]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(3);
    const int64_t B = 2, T = 3, V = 5;
    const double e = 0.15;
    Tensor logits = randn({B, T, V}, &g, DType::Float64).to(d);
    const std::vector<int64_t> tv = {4, 0, 2, 2, 0, 1};  // 0 plays PAD
    Tensor target = i64(d, tv, {B, T});
    const Vec z = logits.to_vector<double>();
    Vec rows;
    for (size_t n = 0; n < tv.size(); ++n) {
      if (tv[n] == 0) {
        rows.push_back(0);
        continue;
      }
      const double* r = &z[n * V];
      double mx = r[0], se = 0, all = 0;
      for (int64_t c = 1; c < V; ++c) mx = std::max(mx, r[c]);
      for (int64_t c = 0; c < V; ++c) se += std::exp(r[c] - mx);
      const double lse = mx + std::log(se);
      for (int64_t c = 0; c < V; ++c) all += lse - r[c];
      rows.push_back((1 - e) * (lse - r[tv[n]]) + e / V * all);
    }
    require_close(nn::cross_entropy(logits, target, {0, e, nn::Reduction::None}), rows, 1e-12);
    double total = 0;
    for (double r : rows) total += r;
    REQUIRE(nn::cross_entropy(logits, target, {0, e, nn::Reduction::Sum}).item<double>() == Approx(total));
    REQUIRE(nn::cross_entropy(logits, target, {0, e}).item<double>() == Approx(total / 4));
    REQUIRE(nn::cross_entropy(logits.to(DType::Float32), target, {0, e}).item<float>() ==
            Approx(total / 4).epsilon(1e-5));

    Tensor all_ignored = full({4}, -100, DType::Int64, d);
    Tensor l4 = randn({4, 4}, &g, DType::Float64).to(d);
    REQUIRE(std::isnan(nn::cross_entropy(l4, all_ignored).item<double>()));
    REQUIRE(nn::cross_entropy(l4, all_ignored, {-100, 0.1, nn::Reduction::Sum}).item<double>() == 0.0);

    // An ignored row with -inf logits must not leak inf or NaN.
    Tensor masked = f64(d, {1.0, 2.0, 0.5, -INFINITY, -INFINITY, 0.0}, {2, 3}).requires_grad_();
    Tensor loss = nn::cross_entropy(masked, i64(d, {1, -100}), {-100, 0.1});
    REQUIRE(std::isfinite(loss.item<double>()));
    loss.backward();
    Vec gr = masked.grad().to_vector<double>();
    for (int i = 3; i < 6; ++i) REQUIRE(gr[i] == 0.0);
  }
}

TEST_CASE("on every device: cross_entropy passes gradcheck and gradgradcheck", "[device][loss][gradcheck]") {
  FOR_EACH_TEST_DEVICE(d) {
    Tensor target = i64(d, {1, 0, 3, 2, 0}, {5});
    auto f = [&](const TensorList& in) { return nn::cross_entropy(in[0], target, {0, 0.1}); };
    REQUIRE(gradcheck_on(d, f, {leaf64({5, 4}, 1)}));
    REQUIRE(gradgradcheck_on(d, f, {leaf64({5, 4}, 2)}));
  }
}

// ---- optimizers ----------------------------------------------------------------------

namespace {
const Vec kStart = {0.5, -1.0, 2.0};
const std::vector<Vec> kGrads = {{1e-3, -2e-3, 0.5}, {-3e-3, 1e-3, 0.25}, {2e-3, 2e-3, -0.75}};

// The Adam / AdamW recurrence in double (optim/optim.h).
struct AdamRef {
  double lr, b1, b2, eps, wd;
  bool decoupled, maximize;
  Vec p, m, v;
  void step(const Vec& grad, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = maximize ? -grad[i] : grad[i];
      if (decoupled)
        p[i] *= 1 - lr * wd;
      else
        g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= lr / (1 - std::pow(b1, t)) * m[i] / (std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, t)) + eps);
    }
  }
};

struct SGDRef {
  double lr, mu, dampening, wd;
  bool nesterov, maximize;
  Vec p, buf;
  void step(const Vec& grad, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = (maximize ? -grad[i] : grad[i]) + wd * p[i];
      double dir = g;
      if (mu != 0) {
        buf[i] = t == 1 ? g : mu * buf[i] + (1 - dampening) * g;
        dir = nesterov ? g + mu * buf[i] : buf[i];
      }
      p[i] -= lr * dir;
    }
  }
};

// Three steps of opt on p (float64 on its device) against ref after each.
template <class Opt, class Ref>
void run_and_compare(Opt& opt, Tensor& p, Ref& ref) {
  for (size_t t = 0; t < kGrads.size(); ++t) {
    p.set_grad(from_vector<double>(kGrads[t], {3}, p.device()));
    opt.step();
    ref.step(kGrads[t], static_cast<int>(t) + 1);
    INFO("step " << t + 1);
    require_close(p, ref.p, 1e-12);
  }
}
}  // namespace

TEST_CASE("on every device: SGD, Adam and AdamW follow their recurrences", "[device][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto param = [&] { return from_vector<double>(kStart, {3}, d).requires_grad_(); };
    for (const optim::SGDOptions& o : {optim::SGDOptions{0.1}, optim::SGDOptions{0.1, 0.9, 0.1, 0.01},
                                       optim::SGDOptions{0.1, 0.9, 0.0, 0.01, true, true}}) {
      INFO("SGD momentum " << o.momentum << " nesterov " << o.nesterov);
      Tensor p = param();
      optim::SGD opt({p}, o);
      SGDRef ref{o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov, o.maximize, kStart, Vec(3, 0)};
      run_and_compare(opt, p, ref);
    }
    {
      INFO("Adam with L2 weight decay");
      Tensor p = param();
      optim::Adam opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.05});
      AdamRef ref{0.1, 0.8, 0.99, 1e-3, 0.05, false, false, kStart, Vec(3, 0), Vec(3, 0)};
      run_and_compare(opt, p, ref);
      for (const auto& [name, t] : opt.state()) REQUIRE(t.device() == d);
    }
    {
      INFO("AdamW, maximize");
      Tensor p = param();
      optim::AdamW opt({p}, {0.1, 0.8, 0.99, 1e-3, 0.2, true});
      AdamRef ref{0.1, 0.8, 0.99, 1e-3, 0.2, true, true, kStart, Vec(3, 0), Vec(3, 0)};
      run_and_compare(opt, p, ref);
    }
  }
}

TEST_CASE("on every device: an optimizer updates a module's own handles in place, and its state round-trips",
          "[device][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(1);
    nn::Linear lin({3, 2}, &g);
    lin.to(d);
    const std::vector<float> before = vals(lin.weight);
    const void* impl_before = lin.weight.impl();
    optim::SGD sgd(lin.named_parameters(), {0.5});
    sum(lin.forward(ones({4, 3}, DType::Float32, d))).backward();
    sgd.step();
    REQUIRE(lin.weight.impl() == impl_before);
    REQUIRE(lin.weight.is_leaf());
    REQUIRE(lin.weight.device() == d);
    const std::vector<float> after = vals(lin.weight);
    for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i] == Approx(before[i] - 2.0f));

    auto param = [&](const Vec& v) { return from_vector<double>(v, {3}, d).requires_grad_(); };
    Tensor a = param(kStart), b = param({1.0, 2.0, 3.0});
    optim::AdamW first(nn::NamedTensors{{"w", a}, {"b", b}}, {0.1});
    for (int t = 0; t < 2; ++t) {
      a.set_grad(from_vector<double>(kGrads[t], {3}, d));
      b.set_grad(from_vector<double>(kGrads[2 - t], {3}, d));
      first.step();
    }
    nn::NamedTensors saved;
    for (const auto& [name, t] : first.state()) saved.emplace_back(name, t.to(kCPU));  // as a checkpoint would
    Tensor a2 = param(a.to_vector<double>()), b2 = param(b.to_vector<double>());
    optim::AdamW second(nn::NamedTensors{{"w", a2}, {"b", b2}}, {0.5});
    second.load_state(saved, first.scalars());
    for (const auto& [name, t] : second.state()) REQUIRE(t.device() == d);
    for (Tensor* p : {&a, &b, &a2, &b2}) p->set_grad(from_vector<double>(kGrads[2], {3}, d));
    first.step();
    second.step();
    REQUIRE(a2.to_vector<double>() == a.to_vector<double>());
    REQUIRE(b2.to_vector<double>() == b.to_vector<double>());
  }
}

TEST_CASE("on every device: clip_grad_norm scales all gradients by max_norm / (total + 1e-6)", "[device][optim]") {
  FOR_EACH_TEST_DEVICE(d) {
    auto param = [&](const Vec& v) {
      return from_vector<double>(v, {static_cast<int64_t>(v.size())}, d).requires_grad_();
    };
    Tensor a = param({0, 0, 0}), b = param({0, 0}), c = param({0});
    auto set = [&] {
      a.set_grad(f64(d, {3, 0, -4}));
      b.set_grad(f64(d, {12, 0}));
    };
    set();
    REQUIRE(optim::clip_grad_norm({a, b, c}, 1.0) == Approx(13.0));  // sqrt(9 + 16 + 144)
    const double k = 1.0 / (13.0 + 1e-6);
    require_close(a.grad(), {3 * k, 0, -4 * k}, 1e-14);
    require_close(b.grad(), {12 * k, 0}, 1e-14);
    REQUIRE_FALSE(c.grad().defined());
    set();
    REQUIRE(optim::clip_grad_norm({a, b}, 6.0, INFINITY) == 12.0);
    set();
    REQUIRE(optim::clip_grad_norm({a, b}, 100.0, 1.0) == Approx(19.0));
    REQUIRE(a.grad().to_vector<double>() == Vec{3, 0, -4});
  }
}
