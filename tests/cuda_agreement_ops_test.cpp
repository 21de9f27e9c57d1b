// CPU versus CUDA (tests/cuda_agreement.h has the harness and tolerances):
// matmul, the index kernels (index_select, gather, scatter_add, index_add,
// embedding), cross_entropy, random fills and dropout from one seed, and the
// optimizer updates. Then two checks of behaviour rather than values: mixing
// a CPU and a CUDA tensor in one op is a heed::Error naming both devices, and
// the errors the CPU raises for bad indices and integer division by zero are
// raised on CUDA too, leaving the device usable.
#include "tests/cuda_agreement.h"

using namespace heed;
using namespace heed::agreement;
using Catch::Matchers::Contains;

namespace {

// ---- matmul ----------------------------------------------------------------------

Cases matmul_cases() {
  Cases cases;
  const int64_t M = 37, K = 53, P = 29;  // [M, K] x [K, P]
  auto mm = [](const Tensor& a, const Tensor& b) { return TensorList{matmul(a, b)}; };
  auto push = [&cases](std::string name, std::function<TensorList(Inputs&)> fn, Tol tol = kMatmul) {
    cases.push_back({"matmul " + name, std::move(fn), tol});
  };
  push("[M, K] x [K, N]", [=](Inputs& in) { return mm(in.leaf({M, K}), in.leaf({K, P})); });
  push("a transposed", [=](Inputs& in) { return mm(in.leaf(Layout::Transposed, M, K), in.leaf({K, P})); });
  push("b transposed (x W^T)", [=](Inputs& in) { return mm(in.leaf({M, K}), in.leaf(Layout::Transposed, K, P)); });
  push("both transposed",
       [=](Inputs& in) { return mm(in.leaf(Layout::Transposed, M, K), in.leaf(Layout::Transposed, K, P)); });
  push("a with column step 2", [=](Inputs& in) { return mm(in.leaf(Layout::ColumnStep, M, K), in.leaf({K, P})); });
  push("b sliced with step and offset", [=](Inputs& in) { return mm(in.leaf({M, K}), in.leaf(Layout::Sliced, K, P)); });
  push("a with expanded rows", [=](Inputs& in) { return mm(in.leaf(Layout::RowBroadcast, M, K), in.leaf({K, P})); });
  push("b with expanded columns", [=](Inputs& in) {
    return mm(in.leaf({M, K}), in.leaf(Layout::ColumnBroadcast, K, P));
  });
  push("batched [3, M, K] x [3, K, N]", [=](Inputs& in) { return mm(in.leaf({3, M, K}), in.leaf({3, K, P})); });
  push("batched, b transposed", [=](Inputs& in) { return mm(in.leaf({3, M, K}), in.leaf({3, P, K}).transpose(1, 2)); });
  push("batched, a transposed", [=](Inputs& in) { return mm(in.leaf({3, K, M}).transpose(1, 2), in.leaf({3, K, P})); });
  push("batched, batch dim not outermost", [=](Inputs& in) {
    return mm(in.leaf({M, 3, K}).transpose(0, 1), in.leaf({K, 3, P}).transpose(0, 1));
  });
  push("broadcast batch [2, 1, M, K] x [3, K, N]", [=](Inputs& in) {
    return mm(in.leaf({2, 1, M, K}), in.leaf({3, K, P}));
  });
  push("batch expanded with stride 0 (b)", [=](Inputs& in) {
    return mm(in.leaf({4, M, K}), in.leaf({1, K, P}).expand({4, K, P}));
  });
  push("batch expanded with stride 0 (a)", [=](Inputs& in) {
    return mm(in.leaf({1, M, K}).expand({4, M, K}), in.leaf({4, K, P}));
  });
  push("4-d batch, permuted so that it cannot be merged", [=](Inputs& in) {
    return mm(in.leaf({2, M, 3, K}).permute({0, 2, 1, 3}), in.leaf({2, 3, K, P}));
  });
  push("[B, T, K] x [K, N] (folded into one product)", [=](Inputs& in) {
    return mm(in.leaf({2, 5, K}), in.leaf({K, P}));
  });
  push("[B, T, K] x W^T", [=](Inputs& in) { return mm(in.leaf({2, 5, K}), in.leaf({P, K}).t()); });
  push("[B, T, K] transposed x W^T", [=](Inputs& in) {
    return mm(in.leaf({5, 2, K}).transpose(0, 1), in.leaf({P, K}).t());
  });
  push("vector x matrix", [=](Inputs& in) { return mm(in.leaf({K}), in.leaf({K, P})); });
  push("matrix x vector", [=](Inputs& in) { return mm(in.leaf(Layout::Transposed, M, K), in.leaf({K})); });
  push("vector x vector", [=](Inputs& in) { return mm(in.leaf({K}), in.leaf({2 * K}).slice(0, 0, 2 * K, 2)); });
  push("batched x vector", [=](Inputs& in) { return mm(in.leaf({3, M, K}), in.leaf({K})); });
  push("vector x batched", [=](Inputs& in) { return mm(in.leaf({K}), in.leaf({3, K, P})); });
  push("K = 1", [=](Inputs& in) { return mm(in.leaf({M, 1}), in.leaf({1, P})); });
  push("M = 1, N = 1", [=](Inputs& in) { return mm(in.leaf({1, K}), in.leaf({K, 1})); });
  push("K = 0 gives zeros", [=](Inputs& in) { return mm(in.leaf({M, 0}), in.leaf({0, P})); });
  push("M = 0", [=](Inputs& in) { return mm(in.leaf({0, K}), in.leaf({K, P})); });
  // Large: operands scaled by 1/sqrt(K) so that results stay O(1).
  const Dist scaled = N(0, 1 / std::sqrt(512.0));
  push("large [256, 512] x [512, 384]", [=](Inputs& in) {
    return mm(in.leaf({256, 512}, scaled), in.leaf({512, 384}, scaled));
  });
  push("large, a transposed, b transposed", [=](Inputs& in) {
    return mm(in.leaf(Layout::Transposed, 256, 512, scaled), in.leaf(Layout::Transposed, 512, 384, scaled));
  });
  push("large batched [8, 128, 512] x W^T", [=](Inputs& in) {
    return mm(in.leaf({8, 128, 512}, scaled), in.leaf({384, 512}, scaled).t());
  });
  push(
      "float64",
      [=](Inputs& in) {
        return mm(in.leaf(Layout::Transposed, M, K, N(), DType::Float64), in.leaf({K, P}, N(), DType::Float64));
      },
      kDouble);
  push(
      "float64, broadcast batch, b transposed",
      [=](Inputs& in) {
        return mm(in.leaf({2, 1, M, K}, N(), DType::Float64), in.leaf({3, P, K}, N(), DType::Float64).transpose(1, 2));
      },
      kDouble);
  return cases;
}

// ---- index kernels -----------------------------------------------------------------

Cases index_cases() {
  Cases cases;
  for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::Sliced, Layout::ColumnStep, Layout::RowBroadcast})
    cases.push_back(
        {fmt::format("index_select over dims 0 and -1, repeated indices ({})", layout_name(l)), [l](Inputs& in) {
           Tensor x = in.leaf(l, 7, 5);
           return TensorList{index_select(x, 0, in.ints({9}, 0, 7)), index_select(x, -1, in.ints({6}, 0, 5))};
         }});
  cases.push_back({"index_select with a strided index", [](Inputs& in) {
                     return TensorList{index_select(in.leaf({7, 5}), 0, in.ints({18}, 0, 7).slice(0, 1, 18, 2))};
                   }});
  cases.push_back({"index_select over the middle dim of [4, 6, 5]", [](Inputs& in) {
                     return TensorList{index_select(in.leaf({4, 6, 5}).permute({0, 2, 1}), 2, in.ints({8}, 0, 6))};
                   }});
  cases.push_back({"index_select of int64, bool and float64",
                   [](Inputs& in) {
                     Tensor idx = in.ints({9}, 0, 7);
                     return TensorList{index_select(in.ints({7, 5}, -9, 9), 0, idx),
                                       index_select(in.mask({5, 7}, 0.5), 1, idx),
                                       index_select(in.leaf({7, 5}, N(), DType::Float64), 0, idx)};
                   },
                   kDouble});
  cases.push_back({"index_select (large, 5000 rows of [1000, 64])", [](Inputs& in) {
                     return TensorList{index_select(in.leaf({1000, 64}), 0, in.ints({5000}, 0, 1000))};
                   }});

  for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::Sliced, Layout::RowBroadcast})
    cases.push_back({fmt::format("gather over dims 1 and 0 ({})", layout_name(l)), [l](Inputs& in) {
                       Tensor x = in.leaf(l, 4, 6);
                       return TensorList{gather(x, 1, in.ints({4, 3}, 0, 6)), gather(x, 0, in.ints({5, 6}, 0, 4)),
                                         gather(x, -1, in.ints({3, 8}, 0, 6))};
                     }});
  cases.push_back({"gather with a transposed index, 3-d", [](Inputs& in) {
                     Tensor x = in.leaf({3, 4, 5});
                     return TensorList{gather(x, 1, in.ints({5, 4, 3}, 0, 4).permute({2, 1, 0})),
                                       gather(x, 2, in.ints({3, 2, 7}, 0, 5)), gather(x, 0, in.ints({6, 4, 5}, 0, 3))};
                   }});
  cases.push_back({"gather of int64", [](Inputs& in) {
                     return TensorList{gather(in.ints({4, 6}, -9, 9), 1, in.ints({4, 8}, 0, 6))};
                   }});

  for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::RowBroadcast})
    cases.push_back({fmt::format("scatter_add over dims 0 and 1 ({})", layout_name(l)), [l](Inputs& in) {
                       Tensor t = in.leaf(l, 5, 4);
                       Tensor src = in.leaf({7, 4});
                       Tensor wide = in.leaf(Layout::Transposed, 5, 6);
                       return TensorList{scatter_add(t, 0, in.ints({6, 3}, 0, 5), src),
                                         scatter_add(t, 1, in.ints({5, 6}, 0, 4), wide)};
                     }});
  cases.push_back(
      {"scatter_add with a transposed index, 3-d, int64", [](Inputs& in) {
         Tensor t = in.leaf({3, 4, 5});
         return TensorList{
             scatter_add(t, 2, in.ints({7, 4}, 0, 5).t().unsqueeze(0).expand({3, 4, 7}), in.leaf({3, 4, 7})),
             scatter_add(in.ints({4, 5}, -9, 9), 0, in.ints({6, 5}, 0, 4), in.ints({6, 5}, -9, 9))};
       }});

  for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::ColumnStep})
    cases.push_back(
        {fmt::format("index_add over dims 0 and 1, repeated indices ({} source)", layout_name(l)), [l](Inputs& in) {
           Tensor t = in.leaf({6, 3});
           Tensor src = in.leaf(l, 8, 3);
           Tensor wide = in.leaf({3, 6});
           return TensorList{index_add(t, 0, in.ints({8}, 0, 6), src),
                             index_add(wide, 1, in.ints({5}, 0, 6), in.leaf(l, 3, 5))};
         }});
  cases.push_back({"index_add (large, 2000 sources into 10 rows)", [](Inputs& in) {
                     return TensorList{index_add(in.leaf({10, 64}), 0, in.ints({2000}, 0, 10), in.leaf({2000, 64}))};
                   }});
  cases.push_back({"index_add of int64 and float64",
                   [](Inputs& in) {
                     Tensor idx = in.ints({8}, 0, 6);
                     return TensorList{
                         index_add(in.ints({6, 3}, -9, 9), 0, idx, in.ints({8, 3}, -9, 9)),
                         index_add(in.leaf({6, 3}, N(), DType::Float64), 0, idx, in.leaf({8, 3}, N(), DType::Float64))};
                   },
                   kDouble});

  cases.push_back({"embedding", [](Inputs& in) {
                     return TensorList{embedding(in.leaf({11, 6}), in.ints({3, 4}, 0, 11))};
                   }});
  cases.push_back({"embedding with transposed ids and a 0-dim id", [](Inputs& in) {
                     Tensor w = in.leaf({11, 6});
                     return TensorList{embedding(w, in.ints({4, 3}, 0, 11).t()), embedding(w, in.ints({}, 0, 11))};
                   }});
  cases.push_back({"embedding (large, [1000, 64] with [32, 50] ids)", [](Inputs& in) {
                     return TensorList{embedding(in.leaf({1000, 64}), in.ints({32, 50}, 0, 1000))};
                   }});
  cases.push_back({"one_hot", [](Inputs& in) {
                     Tensor ids = in.ints({3, 4}, 0, 7);
                     return TensorList{one_hot(ids, 7), one_hot(ids.t(), 9, DType::Int64)};
                   }});
  return cases;
}

// ---- cross_entropy -------------------------------------------------------------------

// Targets in [0, C) with the rows in `ignored` set to `ignore_index`.
Tensor targets(Inputs& in, const Shape& shape, int64_t C, const std::vector<size_t>& ignored, int64_t ignore_index) {
  std::vector<int64_t> t = in.host_ints(shape, 0, C).to_vector<int64_t>();
  for (size_t i : ignored) t[i] = ignore_index;
  return in.put(from_vector<int64_t>(t, shape));
}

Cases loss_cases() {
  Cases cases;
  using nn::Reduction;
  const std::vector<std::pair<std::string, Reduction>> reductions = {
      {"mean", Reduction::Mean}, {"sum", Reduction::Sum}, {"none", Reduction::None}};
  for (const auto& [rname, r] : reductions)
    for (double smoothing : {0.0, 0.1})
      cases.push_back(
          {fmt::format("cross_entropy, reduction {}, smoothing {}, two rows ignored", rname, smoothing),
           [r = r, smoothing](Inputs& in) {
             Tensor logits = in.leaf({8, 5}, N(0, 2));
             return TensorList{nn::cross_entropy(logits, targets(in, {8}, 5, {1, 5}, -100), {-100, smoothing, r})};
           }});
  cases.push_back({"cross_entropy with ignore_index 0 (PAD) and smoothing 0.2", [](Inputs& in) {
                     Tensor logits = in.leaf({12, 5}, N(0, 2));
                     return TensorList{nn::cross_entropy(logits, in.ints({12}, 0, 5), {0, 0.2})};
                   }});
  cases.push_back({"cross_entropy over [B, T, V] = [2, 3, 1000] with smoothing", [](Inputs& in) {
                     Tensor logits = in.leaf({2, 3, 1000}, N(0, 2));
                     return TensorList{nn::cross_entropy(logits, targets(in, {2, 3}, 1000, {4}, -100), {-100, 0.1})};
                   }});
  cases.push_back({"cross_entropy of transposed logits", [](Inputs& in) {
                     Tensor logits = in.leaf(Layout::Transposed, 8, 5, N(0, 2));
                     return TensorList{nn::cross_entropy(logits, in.ints({8}, 0, 5), {-100, 0.0, Reduction::Sum})};
                   }});
  cases.push_back({"cross_entropy: ignored rows with -inf logits stay out", [](Inputs& in) {
                     // Rows 1 and 3 are ignored and masked to -inf except their first logit.
                     std::vector<uint8_t> m(6 * 4, 0);
                     for (int64_t j = 1; j < 4; ++j) m[1 * 4 + j] = m[3 * 4 + j] = 1;
                     Tensor mask = in.put(from_vector<uint8_t>(m, {6, 4}).to(DType::Bool));
                     Tensor logits = masked_fill(in.leaf({6, 4}, N(0, 2)), mask, -kInf);
                     return TensorList{nn::cross_entropy(logits, targets(in, {6}, 4, {1, 3}, -100), {-100, 0.1})};
                   }});
  cases.push_back({"cross_entropy: every row ignored gives NaN (mean) and 0 (sum)", [](Inputs& in) {
                     Tensor logits = in.leaf({4, 3});
                     Tensor target = in.put(full({4}, -100, DType::Int64));
                     return TensorList{nn::cross_entropy(logits, target),
                                       nn::cross_entropy(logits, target, {-100, 0.1, Reduction::Sum})};
                   }});
  cases.push_back({"cross_entropy (float64)",
                   [](Inputs& in) {
                     Tensor logits = in.leaf({8, 5}, N(0, 2), DType::Float64);
                     return TensorList{nn::cross_entropy(logits, targets(in, {8}, 5, {2}, -100), {-100, 0.1})};
                   },
                   kDouble});
  cases.push_back({"nll_loss of log_softmax", [](Inputs& in) {
                     Tensor logits = in.leaf({8, 5}, N(0, 2));
                     return TensorList{nn::nll_loss(log_softmax(logits, -1), targets(in, {8}, 5, {0}, -100))};
                   }});
  return cases;
}

// ---- random fills and dropout --------------------------------------------------------

Cases random_cases() {
  Cases cases;
  cases.push_back({"rand (float32 [1001], float64 [7, 9]) is bit-identical",
                   [](Inputs& in) {
                     Generator g(5);
                     return TensorList{rand({1001}, &g, DType::Float32, in.device()),
                                       rand({7, 9}, &g, DType::Float64, in.device())};
                   },
                   kExact});
  cases.push_back({"uniform(-2, 3) (float32 [1001], float64 [7, 9])",
                   [](Inputs& in) {
                     Generator g(6);
                     return TensorList{uniform({1001}, -2, 3, &g, DType::Float32, in.device()),
                                       uniform({7, 9}, -2, 3, &g, DType::Float64, in.device())};
                   },
                   kUniform});
  cases.push_back({"randn and normal(1, 0.5) (float32)", [](Inputs& in) {
                     Generator g(7);
                     return TensorList{randn({1001}, &g, DType::Float32, in.device()),
                                       normal({3, 5}, 1, 0.5, &g, DType::Float32, in.device())};
                   }});
  cases.push_back({"randn (float64)",
                   [](Inputs& in) {
                     Generator g(8);
                     return TensorList{randn({1001}, &g, DType::Float64, in.device())};
                   },
                   kDouble});
  cases.push_back({"bernoulli (float32, float64, bool, uint8; p 0 and 1) is bit-identical",
                   [](Inputs& in) {
                     Generator g(9);
                     const Device d = in.device();
                     return TensorList{
                         bernoulli({1001}, 0.3, &g, DType::Float32, d), bernoulli({7, 9}, 0.7, &g, DType::Float64, d),
                         bernoulli({1001}, 0.5, &g, DType::Bool, d),    bernoulli({33}, 0.2, &g, DType::UInt8, d),
                         bernoulli({10}, 0.0, &g, DType::Bool, d),      bernoulli({10}, 1.0, &g, DType::Float32, d)};
                   },
                   kExact});
  cases.push_back({"draws continue the stream (offsets past 0) and leave the generator alike", [](Inputs& in) {
                     Generator g(10);
                     const Device d = in.device();
                     TensorList out{rand({13}, &g, DType::Float32, d), randn({17}, &g, DType::Float32, d),
                                    bernoulli({5}, 0.5, &g, DType::Bool, d), randn({3}, &g, DType::Float64, d)};
                     out.push_back(scalar_tensor(static_cast<double>(g.offset()), DType::Int64, d));
                     return out;
                   }});
  cases.push_back({"the default generator after manual_seed",
                   [](Inputs& in) {
                     manual_seed(123);
                     return TensorList{rand({50}, nullptr, DType::Float32, in.device())};
                   },
                   kExact});
  cases.push_back(
      {"large draws ([1000, 1001])",
       [](Inputs& in) {
         Generator g(11);
         const Device d = in.device();
         return TensorList{rand({1000, 1001}, &g, DType::Float32, d), bernoulli({1000, 1001}, 0.1, &g, DType::Bool, d)};
       },
       kExact});

  // Dropout: the same seed gives the same mask on every device.
  for (double p : {0.3, 0.5})
    cases.push_back({fmt::format("dropout p {} (same seed, same mask)", p), [p](Inputs& in) {
                       Tensor x = in.leaf({8, 33});
                       Generator g(12);
                       Tensor y = nn::dropout(x, p, true, &g);
                       return TensorList{y, eq(y, zeros({}, DType::Float32, in.device()))};
                     }});
  cases.push_back(
      {"dropout of a transposed input, p 1, and the module in eval", [](Inputs& in) {
         Generator g(13);
         Tensor x = in.leaf(Layout::Transposed, 6, 9);
         nn::Dropout drop(0.25, &g);
         Tensor train = drop.forward(x);
         drop.eval();
         return TensorList{nn::dropout(x, 0.4, true, &g), nn::dropout(x, 1.0, true, &g), train, drop.forward(x) * 1.0};
       }});
  cases.push_back({"dropout (float64)",
                   [](Inputs& in) {
                     Generator g(14);
                     return TensorList{nn::dropout(in.leaf({8, 33}, N(), DType::Float64), 0.3, true, &g)};
                   },
                   kDouble});
  return cases;
}

// ---- optimizers ------------------------------------------------------------------------

// Three steps of `Opt` on a [5, 7] weight (transposed when asked, so not
// contiguous) and a [7] bias with gradients drawn per step; returns the
// parameters and every state tensor afterwards.
template <class Opt, class Options>
TensorList optimizer_run(Inputs& in, const Options& options, bool transposed_weight = false) {
  Tensor w = transposed_weight ? in.draw({7, 5}).t() : in.draw({5, 7});
  Tensor b = in.draw({7});
  w.requires_grad_();
  b.requires_grad_();
  Opt opt(TensorList{w, b}, options);
  for (int step = 0; step < 3; ++step) {
    w.set_grad(in.draw({5, 7}));
    b.set_grad(in.draw({7}));
    opt.step();
  }
  TensorList out{w.detach().clone(), b.detach().clone()};
  for (const auto& [name, s] : opt.state()) out.push_back(s.detach().clone());
  return out;
}

Cases optimizer_cases() {
  Cases cases;
  cases.push_back(
      {"adam_step_ (Adam: L2 weight decay)", [](Inputs& in) {
         Tensor p = in.draw({5, 7}), g = in.draw({5, 7}), m = in.draw({5, 7}, N(0, 0.1)), v = in.draw({5, 7}, U(0, 1));
         NoGradGuard no_grad;
         adam_step_(
             p, g, m, v,
             {0.01, 0.9, 0.999, 1e-8, 0.01, 0.0, 1 - std::pow(0.9, 3), std::sqrt(1 - std::pow(0.999, 3)), false});
         return TensorList{p, m, v};
       }});
  cases.push_back({"adam_step_ (AdamW: decoupled weight decay, maximize, large)", [](Inputs& in) {
                     Tensor p = in.draw({1000, 1001}), g = in.draw({1000, 1001});
                     Tensor m = in.draw({1000, 1001}, N(0, 0.1)), v = in.draw({1000, 1001}, U(0, 1));
                     NoGradGuard no_grad;
                     adam_step_(p, g, m, v, {0.1, 0.8, 0.99, 1e-6, 0.0, 0.1, 1 - 0.8, std::sqrt(1 - 0.99), true});
                     return TensorList{p, m, v};
                   }});
  cases.push_back({"adam_step_ (float64)",
                   [](Inputs& in) {
                     const DType f64 = DType::Float64;
                     Tensor p = in.draw({5, 7}, N(), f64), g = in.draw({5, 7}, N(), f64);
                     Tensor m = in.draw({5, 7}, N(0, 0.1), f64), v = in.draw({5, 7}, U(0, 1), f64);
                     NoGradGuard no_grad;
                     adam_step_(p, g, m, v, {0.01, 0.9, 0.999, 1e-8, 0.01, 0.0, 1 - 0.9, std::sqrt(1 - 0.999), false});
                     return TensorList{p, m, v};
                   },
                   kDouble});
  cases.push_back({"Adam, three steps, L2 weight decay", [](Inputs& in) {
                     return optimizer_run<optim::Adam>(in, optim::AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.01});
                   }});
  cases.push_back({"Adam, maximize", [](Inputs& in) {
                     optim::AdamOptions o;
                     o.lr = 0.05;
                     o.maximize = true;
                     return optimizer_run<optim::Adam>(in, o);
                   }});
  cases.push_back({"AdamW, three steps", [](Inputs& in) {
                     return optimizer_run<optim::AdamW>(in, optim::AdamWOptions{0.1, 0.9, 0.99, 1e-6, 0.1});
                   }});
  cases.push_back({"Adam on a parameter that is not contiguous (the composed rule)", [](Inputs& in) {
                     return optimizer_run<optim::Adam>(in, optim::AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.01}, true);
                   }});
  // lerp rounds each operation on its own (tensor/lerp_rule.h): the same bits on both devices.
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16}) {
    cases.push_back({std::string("lerp, lerp_ and the EMA update, ") + dtype_name(dt),
                     [dt](Inputs& in) {
                       Tensor a = in.leaf({5, 7}, N(), dt), b = in.leaf({5, 7}, N(), dt), e = in.leaf({7}, N(), dt);
                       Tensor low = lerp(a, b, 0.3), high = lerp(a, e, 0.8);
                       Tensor p = in.draw({64, 33}, N(), dt), avg = in.draw({64, 33}, N(), dt);
                       Tensor q = in.draw({64, 33}, N(), dt).t();  // a strided end
                       NoGradGuard no_grad;
                       avg.lerp_(p, 0.002);
                       Tensor avg2 = in.draw({33, 64}, N(), dt);
                       avg2.lerp_(q, 0.75);
                       return TensorList{low, high, avg, avg2};
                     },
                     kExact});
  }
  cases.push_back({"SGD", [](Inputs& in) { return optimizer_run<optim::SGD>(in, optim::SGDOptions{0.1}); }});
  cases.push_back({"SGD with momentum, dampening and weight decay", [](Inputs& in) {
                     return optimizer_run<optim::SGD>(in, optim::SGDOptions{0.1, 0.9, 0.1, 0.01});
                   }});
  cases.push_back({"SGD, Nesterov, maximize, transposed weight", [](Inputs& in) {
                     return optimizer_run<optim::SGD>(in, optim::SGDOptions{0.05, 0.8, 0.0, 0.02, true, true}, true);
                   }});
  return cases;
}

}  // namespace

HEED_AGREEMENT_TEST("matmul and batched matmul", matmul_cases)
HEED_AGREEMENT_TEST("index_select, gather, scatter_add, index_add, embedding", index_cases)
HEED_AGREEMENT_TEST("cross_entropy", loss_cases)
HEED_AGREEMENT_TEST("random fills and dropout from one seed", random_cases)
HEED_AGREEMENT_TEST("adam_step_ and the optimizers", optimizer_cases)

// ---- behaviour ----------------------------------------------------------------------------

namespace {
struct Named {
  std::string name;
  std::function<void()> run;
};
}  // namespace

TEST_CASE("cuda: mixing a CPU and a CUDA tensor in one op is a heed::Error naming both devices", "[cuda][devices]") {
  HEED_SKIP_WITHOUT_GPU();
  const Device gpu = kCUDA;
  Tensor c = ones({2, 3}), g = ones({2, 3}, DType::Float32, gpu);
  Tensor cond_c = ones({2, 3}, DType::Bool), cond_g = ones({2, 3}, DType::Bool, gpu);
  Tensor idx_c = zeros({2}, DType::Int64), idx_g = zeros({2}, DType::Int64, gpu);
  Tensor idx2_c = zeros({2, 3}, DType::Int64), idx2_g = zeros({2, 3}, DType::Int64, gpu);
  Tensor w_c = ones({3});
  Tensor target_c = zeros({2}, DType::Int64);
  const std::vector<Named> mixes = {
      {"add", [&] { add(c, g); }},
      {"add, CUDA tensor first", [&] { add(g, c); }},
      {"mul", [&] { mul(g, c); }},
      {"maximum", [&] { maximum(c, g); }},
      {"eq", [&] { eq(g, c); }},
      {"matmul", [&] { matmul(c, g.t()); }},
      {"where, condition on the CPU", [&] { where(cond_c, g, g); }},
      {"where, one branch on the CPU", [&] { where(cond_g, c, g); }},
      {"masked_fill, mask on the CPU", [&] { masked_fill(g, cond_c, 0.0); }},
      {"index_select, index on the CPU", [&] { index_select(g, 0, idx_c); }},
      {"gather, index on the CPU", [&] { gather(g, 1, idx2_c); }},
      {"scatter_add, source on the CPU", [&] { scatter_add(g, 0, idx2_g, c); }},
      {"index_add, source on the CPU", [&] { index_add(g, 0, idx_g, c); }},
      {"embedding, ids on the CPU", [&] { embedding(g, idx_c); }},
      {"layer_norm, weight on the CPU", [&] { layer_norm(g, w_c, Tensor()); }},
      {"cat",
       [&] {
         cat({c, g});
       }},
      {"cross_entropy, target on the CPU", [&] { nn::cross_entropy(g, target_c); }},
      {"adam_step_, grad on the CPU",
       [&] {
         NoGradGuard no_grad;
         adam_step_(g.clone(), c, zeros_like(g), zeros_like(g), {0.1, 0.9, 0.999, 1e-8, 0, 0, 0.1, 0.1, false});
       }},
      {"add_ in place", [&] { g.clone().add_(c); }},
      {"backward with a gradient on the CPU",
       [&] {
         Tensor x = ones({2, 3}, DType::Float32, gpu).requires_grad_();
         mul(x, 2.0).backward(c);
       }},
  };
  for (const Named& m : mixes) {
    DYNAMIC_SECTION(m.name) {
      std::string message;
      try {
        m.run();
      } catch (const Error& e) {
        message = e.what();
      }
      INFO("message: " << message);
      REQUIRE_FALSE(message.empty());
      CHECK_THAT(message, Contains("cpu") && Contains("cuda:0"));
    }
  }
}

TEST_CASE("cuda: bad indices and integer division by zero raise the CPU's errors, and the device stays usable",
          "[cuda][errors]") {
  HEED_SKIP_WITHOUT_GPU();
  // Each bad call, with what its message must contain on every device.
  struct Bad {
    std::string name;
    std::function<void(Device)> run;
    std::vector<std::string> says;
  };
  auto ids = [](std::vector<int64_t> v, Shape s, Device d) { return from_vector<int64_t>(v, s).to(d); };
  const std::vector<Bad> bad = {
      {"index_select, index 7 of 5",
       [&](Device d) {
         index_select(ones({5, 3}, DType::Float32, d), 0, ids({1, 7, 2}, {3}, d));
       },
       {"index_select", "out of range", "7"}},
      {"index_select, negative index",
       [&](Device d) {
         index_select(ones({5, 3}, DType::Float32, d), 1, ids({0, -1}, {2}, d));
       },
       {"index_select", "out of range", "-1"}},
      {"gather, index 6 of 6",
       [&](Device d) {
         gather(ones({2, 6}, DType::Float32, d), 1, ids({0, 6, 1, 2}, {2, 2}, d));
       },
       {"gather", "out of range", "6"}},
      {"scatter_add, index 9 of 4",
       [&](Device d) {
         scatter_add(zeros({4, 2}, DType::Float32, d), 0, ids({1, 9}, {1, 2}, d), ones({1, 2}, DType::Float32, d));
       },
       {"scatter_add", "out of range", "9"}},
      {"index_add, index 3 of 3",
       [&](Device d) {
         index_add(zeros({3, 2}, DType::Float32, d), 0, ids({3}, {1}, d), ones({1, 2}, DType::Float32, d));
       },
       {"index_add", "out of range", "3"}},
      {"embedding, id 11 of 11",
       [&](Device d) {
         embedding(ones({11, 4}, DType::Float32, d), ids({0, 11}, {2}, d));
       },
       {"embedding", "11"}},
      {"int64 division by zero",
       [&](Device d) {
         div(ids({4, 5}, {2}, d), ids({2, 0}, {2}, d));
       },
       {"division by zero"}},
  };
  for (const Bad& b : bad) {
    DYNAMIC_SECTION(b.name) {
      for (Device d : {kCPU, kCUDA}) {
        INFO("on " << d.str());
        std::string message;
        try {
          b.run(d);
          synchronize(d);
        } catch (const Error& e) {
          message = e.what();
        }
        INFO("message: " << message);
        REQUIRE_FALSE(message.empty());
        for (const std::string& s : b.says) CHECK_THAT(message, Contains(s));
      }
      // No sticky CUDA error: the next kernels run and give the right answer.
      Tensor x = arange(0.0, 1000.0, 1.0, DType::Float32, kCUDA);
      CHECK(sum(x).item<float>() == 499500.0f);
      CHECK(index_select(x, 0, ids({3, 999}, {2}, kCUDA)).to(kCPU).to_vector<float>() == std::vector<float>{3, 999});
    }
  }
}
