// CPU versus CUDA (tests/cuda_agreement.h has the harness and tolerances):
// reductions over any dims with keepdim (sum, mean, prod, max, min, argmax,
// argmin and the composed var and logsumexp), softmax and log_softmax with
// fully masked rows, and the fused layer_norm, forward and backward.
#include "tests/cuda_agreement.h"

using namespace heed;
using namespace heed::agreement;

namespace {

using Fn1 = std::function<TensorList(const Tensor&)>;

// The product has a kernel (ReduceOp::Prod) but no public op yet: the row is
// called directly, as the op layer would (out keeps x's rank), without a
// gradient.
Tensor prod_of(const Tensor& x, int64_t dim) {
  Shape shape = x.shape();
  shape[static_cast<size_t>(dim)] = 1;
  Tensor out = empty(shape, x.dtype(), x.device());
  backend(x.device()).reduce(ReduceOp::Prod, x.detach(), out);
  return out;
}

struct ReduceSpec {
  std::string name;
  Dist dist;
  Fn1 f;
};

// Reductions of a [R, C] float input; each returns what it computes.
std::vector<ReduceSpec> reduce_specs() {
  return {
      {"sum of everything", N(), [](const Tensor& x) { return TensorList{sum(x)}; }},
      {"sum over dim 0", N(), [](const Tensor& x) { return TensorList{sum(x, {0})}; }},
      {"sum over dim 1, keepdim", N(), [](const Tensor& x) { return TensorList{sum(x, {1}, true)}; }},
      {"sum over dims {0, 1}, keepdim", N(),
       [](const Tensor& x) {
         return TensorList{x.sum({0, -1}, true)};
       }},
      {"mean of everything", N(), [](const Tensor& x) { return TensorList{mean(x)}; }},
      {"mean over dim 0, keepdim", N(), [](const Tensor& x) { return TensorList{mean(x, {0}, true)}; }},
      {"mean over dim -1", N(), [](const Tensor& x) { return TensorList{x.mean({-1})}; }},
      {"prod over dim 1", U(0.5, 1.5), [](const Tensor& x) { return TensorList{prod_of(x, 1)}; }},
      {"amax over dim 1", N(), [](const Tensor& x) { return TensorList{amax(x, {1})}; }},
      {"amin over dim 0, keepdim", N(), [](const Tensor& x) { return TensorList{amin(x, {0}, true)}; }},
      {"amax of everything", N(), [](const Tensor& x) { return TensorList{amax(x)}; }},
      {"max and min of everything", N(),
       [](const Tensor& x) {
         return TensorList{x.max(), x.min()};
       }},
      {"max over dim 1 with indices", N(),
       [](const Tensor& x) {
         auto r = max(x, 1);
         return TensorList{r.values, r.indices};
       }},
      {"min over dim 0 with indices, keepdim", N(),
       [](const Tensor& x) {
         auto r = min(x, 0, true);
         return TensorList{r.values, r.indices};
       }},
      {"argmax over dim 1, argmin over dim 0 keepdim, argmax of everything", N(),
       [](const Tensor& x) {
         return TensorList{argmax(x, 1), argmin(x, 0, true), argmax(x)};
       }},
      {"var over dim 1 (unbiased) and of everything (biased)", N(),
       [](const Tensor& x) {
         return TensorList{var(x, {1}), var(x, {}, 0)};
       }},
      {"logsumexp over dim 1", N(0, 3), [](const Tensor& x) { return TensorList{logsumexp(x, {1})}; }},
  };
}

Cases reduction_cases() {
  Cases cases;
  for (const ReduceSpec& s : reduce_specs()) {
    for (Layout l : kAllLayouts)
      cases.push_back({fmt::format("{} ({})", s.name, layout_name(l)),
                       [s, l](Inputs& in) { return s.f(in.leaf(l, 6, 7, s.dist)); }});
    cases.push_back({s.name + " (float64)",
                     [s](Inputs& in) { return s.f(in.leaf(Layout::Transposed, 6, 7, s.dist, DType::Float64)); },
                     kDouble});
  }
  // 3-d, permuted ([4, 5, 6] seen as [6, 4, 5]), several dims at once.
  cases.push_back(
      {"3-d permuted: sum over {0, 2}, mean over 1 keepdim, amax over {0, 2}, prod over 2, argmax over 1",
       [](Inputs& in) {
         Tensor x = in.leaf({4, 5, 6}).permute({2, 0, 1});
         Tensor p = in.leaf({4, 5, 6}, U(0.5, 1.5)).permute({2, 0, 1});
         return TensorList{sum(x, {0, 2}), mean(x, {1}, true), amax(x, {0, 2}), prod_of(p, 2), argmax(x, 1)};
       }});
  cases.push_back({"0-dim: sum, mean, amax", [](Inputs& in) {
                     Tensor x = in.leaf(Shape{});
                     return TensorList{sum(x), mean(x, {}, true), amax(x)};
                   }});

  // Large: many blocks per output, long rows, column sums, a middle dim.
  // Positive values, so no sum cancels to near zero (see the tolerances).
  const Dist positive = U(0.5, 1.5);
  cases.push_back({"sum of everything (large, [1000, 1003])", [positive](Inputs& in) {
                     return TensorList{sum(in.leaf({1000, 1003}, positive))};
                   }});
  cases.push_back({"sum of everything (large, transposed)", [positive](Inputs& in) {
                     return TensorList{sum(in.leaf(Layout::Transposed, 1000, 1003, positive))};
                   }});
  cases.push_back({"column sums (large, [2000, 300] over dim 0)", [positive](Inputs& in) {
                     return TensorList{sum(in.leaf({2000, 300}, positive), {0})};
                   }});
  cases.push_back({"row sums (large, [300, 4099] over dim 1)", [positive](Inputs& in) {
                     return TensorList{sum(in.leaf({300, 4099}, positive), {1})};
                   }});
  cases.push_back({"mean over long rows (large, [8, 100003] over dim 1)", [positive](Inputs& in) {
                     return TensorList{mean(in.leaf({8, 100003}, positive), {1})};
                   }});
  cases.push_back({"sum over the middle dim (large, [8, 513, 7])", [positive](Inputs& in) {
                     return TensorList{sum(in.leaf({8, 513, 7}, positive), {1})};
                   }});
  cases.push_back({"amax over dim 1 (large, [257, 5000])", [](Inputs& in) {
                     return TensorList{amax(in.leaf({257, 5000}), {1})};
                   }});
  cases.push_back({"argmax over dim 0 and max of everything (large, [4096, 33])", [](Inputs& in) {
                     Tensor x = in.leaf({4096, 33});
                     return TensorList{argmax(x, 0), x.max(), argmax(x)};
                   }});

  // Integers accumulate in 64-bit; bools count into int64.
  cases.push_back({"int64 sum, prod, amax, amin, argmax, argmin", [](Inputs& in) {
                     Tensor x = in.ints({6, 7}, -3, 4).t();
                     return TensorList{sum(x),       sum(x, {0}),  prod_of(x, 1), amax(x, {1}), amin(x, {0}, true),
                                       argmax(x, 1), argmin(x, 0), x.max()};
                   }});
  cases.push_back({"bool and uint8 sums", [](Inputs& in) {
                     Tensor m = in.mask({6, 7}, 0.4);
                     Tensor u = in.ints({6, 7}, 0, 256, DType::UInt8);
                     return TensorList{sum(m), sum(m, {1}), sum(m.t(), {1}, true), sum(u, {0})};
                   }});

  // Ties go to the first index; NaN counts as the extreme and propagates.
  cases.push_back({"argmax and argmin ties give the first index", [](Inputs& in) {
                     Tensor x = in.ints({9, 11}, -1, 2, DType::Float32);
                     Tensor e = in.draw({1, 11}).expand({9, 11});
                     auto mx = max(x, 1);
                     return TensorList{argmax(x, 1), argmin(x, 0), argmax(x),
                                       mx.indices,   argmax(e, 0), argmin(e, 0, true)};
                   }});
  cases.push_back({"gradients of max over dim, amin and max over ties", [](Inputs& in) {
                     Tensor x = in.leaf(in.ints({5, 8}, -1, 2, DType::Float32));
                     auto mx = max(x, 1);
                     return TensorList{mx.values, amin(x, {0}), x.max()};
                   }});
  cases.push_back({"NaN propagates through max, min, argmax, argmin and sum", [](Inputs& in) {
                     Tensor x = in.values<double>({1, kNaN, 3, 2,       //
                                                   kNaN, 5, kNaN, 0,    //
                                                   -kInf, 2, 7, kInf,   //
                                                   kInf, -kInf, 1, 2},  //
                                                  {4, 4}, DType::Float32);
                     auto mx = max(x, 1);
                     auto mn = min(x, 0);
                     return TensorList{amax(x, {1}), amin(x, {0}), mx.values,    mx.indices,  mn.values, mn.indices,
                                       argmax(x, 1), argmin(x, 1), argmax(x, 0), sum(x, {1}), x.max(),   argmax(x)};
                   }});

  // Empty inputs: sums over no elements are 0.
  cases.push_back({"reductions of empty tensors", [](Inputs& in) {
                     Tensor a = in.leaf({0, 5}), b = in.draw({3, 0});
                     return TensorList{sum(a, {0}), sum(b, {1}), sum(a), mean(a, {1}), sum(in.ints({0, 4}, 0, 5), {0})};
                   }});
  return cases;
}

// ---- softmax and log_softmax ------------------------------------------------------

// Row 0 fully masked, row 1 all but its first entry, row 2 all but its last,
// the rest at random.
Tensor masked_rows(Inputs& in, int64_t R, int64_t C) {
  std::vector<uint8_t> m(static_cast<size_t>(R * C), 0);
  Tensor random = in.host_mask({R, C}, 0.4).to(DType::UInt8);
  std::vector<uint8_t> r = random.to_vector<uint8_t>();
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const size_t k = static_cast<size_t>(i * C + j);
      m[k] = i == 0 ? 1 : i == 1 ? j != 0 : i == 2 ? j != C - 1 : r[k];
    }
  return in.put(from_vector<uint8_t>(m, {R, C}).to(DType::Bool));
}

Cases softmax_cases() {
  Cases cases;
  for (bool log : {false, true}) {
    const std::string op = log ? "log_softmax" : "softmax";
    auto f = [log](const Tensor& x, int64_t dim) { return log ? log_softmax(x, dim) : softmax(x, dim); };
    for (int64_t C : {1, 7, 32, 33, 1000, 4099})
      cases.push_back({fmt::format("{} over rows of {}", op, C), [f, C](Inputs& in) {
                         return TensorList{f(in.leaf({5, C}, N(0, 3)), -1)};
                       }});
    for (Layout l : kAllLayouts)
      cases.push_back({fmt::format("{} ({})", op, layout_name(l)),
                       [f, l](Inputs& in) { return TensorList{f(in.leaf(l, 5, 7, N(0, 3)), 1)}; }});
    cases.push_back({op + " over dim 0", [f](Inputs& in) { return TensorList{f(in.leaf({9, 5}, N(0, 3)), 0)}; }});
    cases.push_back({op + " over the middle dim of [2, 13, 3]", [f](Inputs& in) {
                       return TensorList{f(in.leaf({2, 13, 3}, N(0, 3)), 1)};
                     }});
    cases.push_back({op + " of large values (std 1000)", [f](Inputs& in) {
                       return TensorList{f(in.leaf({5, 33}, N(0, 1000)), -1)};
                     }});
    cases.push_back({op + " (many rows, [4096, 64])", [f](Inputs& in) {
                       return TensorList{f(in.leaf({4096, 64}, N(0, 3)), -1)};
                     }});
    for (int64_t C : {7, 33, 1000})
      cases.push_back({fmt::format("{} with fully and partly masked rows of {}", op, C), [f, C](Inputs& in) {
                         Tensor x = in.leaf({6, C}, N(0, 3));
                         return TensorList{f(masked_fill(x, masked_rows(in, 6, C), -kInf), -1)};
                       }});
    cases.push_back({op + " with masked rows over dim 0", [f](Inputs& in) {
                       Tensor x = in.leaf({6, 9}, N(0, 3));
                       return TensorList{f(masked_fill(x, masked_rows(in, 6, 9), -kInf).t(), 0)};
                     }});
    cases.push_back({op + " (float64, masked rows)",
                     [f](Inputs& in) {
                       Tensor x = in.leaf({6, 33}, N(0, 3), DType::Float64);
                       return TensorList{f(masked_fill(x, masked_rows(in, 6, 33), -kInf), -1)};
                     },
                     kDouble});
  }
  return cases;
}

// ---- layer_norm ------------------------------------------------------------------

Cases layer_norm_cases() {
  Cases cases;
  // Rows with an offset and a spread unlike N(0, 1), so centring and scaling both matter.
  const Dist x_dist = N(5, 3), w_dist = N(1, 0.5), b_dist = N();
  for (int64_t D : {1, 5, 64, 768, 1031})
    cases.push_back({fmt::format("layer_norm over {} with weight and bias", D), [=](Inputs& in) {
                       Tensor x = in.leaf({7, D}, x_dist);
                       return TensorList{layer_norm(x, in.leaf({D}, w_dist), in.leaf({D}, b_dist))};
                     }});
  cases.push_back({"layer_norm without weight and bias", [=](Inputs& in) {
                     return TensorList{layer_norm(in.leaf({7, 64}, x_dist), Tensor(), Tensor())};
                   }});
  cases.push_back({"layer_norm with weight only", [=](Inputs& in) {
                     return TensorList{layer_norm(in.leaf({7, 33}, x_dist), in.leaf({33}, w_dist), Tensor())};
                   }});
  cases.push_back({"layer_norm with bias only, eps 1e-3", [=](Inputs& in) {
                     return TensorList{layer_norm(in.leaf({7, 33}, x_dist), Tensor(), in.leaf({33}, b_dist), 1e-3)};
                   }});
  cases.push_back(
      {"layer_norm of 3-d [2, 3, 96]", [=](Inputs& in) {
         return TensorList{layer_norm(in.leaf({2, 3, 96}, x_dist), in.leaf({96}, w_dist), in.leaf({96}, b_dist))};
       }});
  for (Layout l : {Layout::Transposed, Layout::Sliced, Layout::RowBroadcast})
    cases.push_back({fmt::format("layer_norm of a {} input", layout_name(l)), [=](Inputs& in) {
                       Tensor x = in.leaf(l, 7, 48, x_dist);
                       Tensor w = in.leaf({96}, w_dist).slice(0, 0, 96, 2);  // strided weight
                       return TensorList{layer_norm(x, w, in.leaf({48}, b_dist))};
                     }});
  cases.push_back({"layer_norm of constant rows (variance 0)", [=](Inputs& in) {
                     Tensor x = in.leaf(Layout::ColumnBroadcast, 4, 16, x_dist);
                     return TensorList{layer_norm(x, in.leaf({16}, w_dist), in.leaf({16}, b_dist))};
                   }});
  cases.push_back(
      {"layer_norm (many rows, [4096, 64])", [=](Inputs& in) {
         return TensorList{layer_norm(in.leaf({4096, 64}, x_dist), in.leaf({64}, w_dist), in.leaf({64}, b_dist))};
       }});
  cases.push_back(
      {"layer_norm (long rows, [3, 8192])", [=](Inputs& in) {
         return TensorList{layer_norm(in.leaf({3, 8192}, x_dist), in.leaf({8192}, w_dist), in.leaf({8192}, b_dist))};
       }});
  cases.push_back({"layer_norm (float64)",
                   [=](Inputs& in) {
                     const DType f64 = DType::Float64;
                     return TensorList{layer_norm(in.leaf({7, 64}, x_dist, f64), in.leaf({64}, w_dist, f64),
                                                  in.leaf({64}, b_dist, f64))};
                   },
                   kDouble});
  return cases;
}

}  // namespace

HEED_AGREEMENT_TEST("reductions over dims, keepdim, ties, NaN and empty inputs", reduction_cases)
HEED_AGREEMENT_TEST("softmax and log_softmax, masked rows included", softmax_cases)
HEED_AGREEMENT_TEST("layer_norm, the fused op", layer_norm_cases)
