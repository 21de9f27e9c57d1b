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

}  // namespace

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
