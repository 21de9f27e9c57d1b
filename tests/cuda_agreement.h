#pragma once
// The CPU-versus-CUDA agreement harness (tests/cuda_agreement_*_test.cpp):
// every op whose kernels live in the op table (tensor/backend.h) runs on the
// CPU and on cuda:0 from the same inputs, forward and backward, and the
// outputs and the gradients of every input must agree.
//
// A case is one line in a table: a name and a function that builds its
// inputs through `Inputs` (drawn on the CPU from fixed seeds, then moved to
// the device under test, so both devices see the same bits) and returns its
// outputs. The harness runs backward from every output that requires grad
// with a fixed random upstream gradient, brings the outputs and the gradients
// of every leaf back to the CPU and compares them. Inputs come in several
// layouts (transposed, sliced with a step and an offset, expanded with stride
// 0, broadcast by the op), so kernels see strided operands; the leaf is always
// a dense tensor on the device and the view is taken there.
//
//   cases.push_back({"exp (transposed)", [](Inputs& in) {
//     return TensorList{exp(in.leaf(Layout::Transposed, 5, 6))};
//   }});
//
// HEED_AGREEMENT_TEST(title, table) makes two Catch test cases of a table:
// "cuda agreement: <title>" compares the CPU with cuda:0, one section per case
// (a failure names the op and layout; a throw in one case, such as a kernel
// not written yet, does not stop the others), and is skipped with a "[skip]"
// warning without a GPU; "cuda agreement, CPU against CPU: <title>" always
// runs every case on the CPU twice, so the tables are known to be valid code
// (inputs, shapes, backward) on machines without a GPU.
//
// Tolerances, |cuda - cpu| <= atol + rtol * |cpu| per element:
//  - float32 default rtol 1e-4, atol 1e-5. The devices round differently:
//    CUDA's expf/tanhf/erff vs heed's vec_math (a few ulp each), FMA
//    contraction by nvcc, and another order of summation in reductions (the
//    CPU sums in double, a GPU tree may sum in float). Those are 1e-7..1e-6
//    relative at the sizes used; atol covers results near zero (sin near pi,
//    a gradient that cancels). Large reductions use positive inputs so that
//    no sum cancels to near zero.
//  - matmul rtol 1e-4, atol 1e-4: cuBLAS and heed's gemm block K differently;
//    operands of the large cases are scaled by 1/sqrt(K) so results stay O(1).
//    A TF32 cuBLAS mode (10-bit mantissa) fails this on purpose: heed's
//    float32 matmul is full float32 on the CPU.
//  - float64 rtol 1e-9, atol 1e-11: rounding order only.
//  - integers and bools exactly; NaN and +-inf must sit at the same places.
//  - random: uniform on [0, 1) and Bernoulli exactly (tensor/philox.h promises
//    bit-identical streams); uniform on [a, b) within 1e-6 (a + (b - a) * u
//    may be contracted into one FMA on the GPU); normal within the float32
//    default (the device's log/cos/sqrt).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <heed.h>
#include "tests/test_devices.h"

namespace heed::agreement {

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- tolerances ---------------------------------------------------------------

struct Tol {
  double rtol;
  double atol;
};
inline constexpr Tol kFloat{1e-4, 1e-5};
inline constexpr Tol kMatmul{1e-4, 1e-4};
inline constexpr Tol kDouble{1e-9, 1e-11};
inline constexpr Tol kExact{0, 0};
inline constexpr Tol kUniform{1e-6, 1e-6};

// ---- inputs -------------------------------------------------------------------

// How a float input's values are drawn: normal(a, b) or uniform on [a, b).
struct Dist {
  bool uniform;
  double a, b;
};
inline Dist N(double mean = 0, double std = 1) { return {false, mean, std}; }
inline Dist U(double lo, double hi) { return {true, lo, hi}; }

// How a [R, C] input is laid out in memory. The leaf (the tensor that gets
// the gradient) is dense; the op sees a view of it.
enum class Layout {
  Contiguous,       // leaf [R, C]
  Transposed,       // leaf [C, R], .t()
  Sliced,           // leaf [2R + 1, C + 3]: rows 1, 3, 5, ..., columns 2 .. C + 1 (offset, row step 2)
  ColumnStep,       // leaf [R, 2C]: columns 1, 3, 5, ... (no unit stride anywhere)
  RowBroadcast,     // leaf [1, C] expanded to [R, C] (stride 0 over rows)
  ColumnBroadcast,  // leaf [R, 1] expanded to [R, C] (stride 0 over columns)
};
inline const std::vector<Layout> kAllLayouts = {Layout::Contiguous, Layout::Transposed,   Layout::Sliced,
                                                Layout::ColumnStep, Layout::RowBroadcast, Layout::ColumnBroadcast};

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous:
      return "contiguous";
    case Layout::Transposed:
      return "transposed";
    case Layout::Sliced:
      return "sliced with step and offset";
    case Layout::ColumnStep:
      return "column step 2";
    case Layout::RowBroadcast:
      return "expanded rows";
    case Layout::ColumnBroadcast:
      return "expanded columns";
  }
  return "?";
}

inline Shape base_shape(Layout l, int64_t R, int64_t C) {
  switch (l) {
    case Layout::Contiguous:
      return {R, C};
    case Layout::Transposed:
      return {C, R};
    case Layout::Sliced:
      return {2 * R + 1, C + 3};
    case Layout::ColumnStep:
      return {R, 2 * C};
    case Layout::RowBroadcast:
      return {1, C};
    case Layout::ColumnBroadcast:
      return {R, 1};
  }
  return {};
}

inline Tensor view_as_layout(const Tensor& base, Layout l, int64_t R, int64_t C) {
  switch (l) {
    case Layout::Contiguous:
      return base;
    case Layout::Transposed:
      return base.t();
    case Layout::Sliced:
      return base.slice(0, 1, 2 * R + 1, 2).narrow(1, 2, C);
    case Layout::ColumnStep:
      return base.slice(1, 1, 2 * C, 2);
    case Layout::RowBroadcast:
      return base.expand({R, C});
    case Layout::ColumnBroadcast:
      return base.expand({R, C});
  }
  return base;
}

// Makes a case's inputs on one device. Every value is drawn on the CPU from
// the next seed of a fixed sequence and then moved, so the same sequence of
// calls gives bit-identical inputs on every device.
class Inputs {
 public:
  explicit Inputs(Device device) : device_(device) {}
  Device device() const { return device_; }

  // ---- plain inputs (no gradient), made on the CPU ----
  Tensor host_draw(const Shape& shape, Dist d = N(), DType dtype = DType::Float32) {
    Generator g(next_seed());
    return d.uniform ? heed::uniform(shape, d.a, d.b, &g, dtype) : heed::normal(shape, d.a, d.b, &g, dtype);
  }
  // Integers in [lo, hi), int64 or converted to `dtype`.
  Tensor host_ints(const Shape& shape, int64_t lo, int64_t hi, DType dtype = DType::Int64) {
    Generator g(next_seed());
    Tensor u = heed::uniform(shape, 0, static_cast<double>(hi - lo), &g, DType::Float64);
    Tensor t = add(to_dtype(u, DType::Int64), static_cast<double>(lo));  // truncation is floor for u >= 0
    return to_dtype(t, dtype);
  }
  // Bool, true with probability p.
  Tensor host_mask(const Shape& shape, double p) {
    Generator g(next_seed());
    return bernoulli(shape, p, &g, DType::Bool);
  }

  // ---- the same, moved to the device ----
  Tensor put(const Tensor& host) { return to_device(host, device_); }
  Tensor draw(const Shape& shape, Dist d = N(), DType dtype = DType::Float32) {
    return put(host_draw(shape, d, dtype));
  }
  Tensor ints(const Shape& shape, int64_t lo, int64_t hi, DType dtype = DType::Int64) {
    return put(host_ints(shape, lo, hi, dtype));
  }
  Tensor mask(const Shape& shape, double p) { return put(host_mask(shape, p)); }
  // Exact values, converted to `dtype` on the CPU.
  template <class T>
  Tensor values(const std::vector<T>& v, const Shape& shape, DType dtype = dtype_of<T>::value) {
    return put(to_dtype(from_vector<T>(v, shape), dtype));
  }

  // ---- leaves: inputs whose gradients are compared ----
  Tensor leaf(Tensor t) {
    HEED_CHECK(t.device() == device_ && t.grad_fn() == nullptr && is_floating(t.dtype()),
               "Inputs::leaf: expects a fresh float tensor on {}", device_);
    t.requires_grad_();
    leaves_.push_back(t);
    return t;
  }
  Tensor leaf(const Shape& shape, Dist d = N(), DType dtype = DType::Float32) { return leaf(draw(shape, d, dtype)); }
  // A [R, C] leaf seen through `layout`.
  Tensor leaf(Layout layout, int64_t R, int64_t C, Dist d = N(), DType dtype = DType::Float32) {
    return view_as_layout(leaf(base_shape(layout, R, C), d, dtype), layout, R, C);
  }

  const TensorList& leaves() const { return leaves_; }

 private:
  uint64_t next_seed() { return 1000 + ++calls_; }

  Device device_;
  uint64_t calls_ = 0;
  TensorList leaves_;
};

// ---- cases and the harness ------------------------------------------------------

struct Case {
  std::string name;
  std::function<TensorList(Inputs&)> fn;
  Tol tol = kFloat;
};
using Cases = std::vector<Case>;

// What a run produced, on the CPU, labelled for messages.
struct Outcome {
  std::vector<std::pair<std::string, Tensor>> items;
};

inline Outcome run_case(const Case& c, Device device) {
  Inputs in(device);
  TensorList outs = c.fn(in);
  HEED_CHECK(!outs.empty(), "case '{}' returned no outputs", c.name);
  TensorList roots, seeds;
  for (size_t k = 0; k < outs.size(); ++k) {
    const Tensor& y = outs[k];
    HEED_CHECK(y.defined(), "case '{}': output {} is undefined", c.name, k);
    HEED_CHECK(y.device() == device, "case '{}': output {} is on {}, the case ran on {}", c.name, k, y.device(),
               device);
    if (y.requires_grad()) {
      Generator g(90000 + k);
      roots.push_back(y);
      seeds.push_back(to_device(randn(y.shape(), &g, y.dtype()), device));
    }
  }
  if (!roots.empty()) run_backward(roots, seeds);

  Outcome o;
  for (size_t k = 0; k < outs.size(); ++k)
    o.items.emplace_back(fmt::format("output {} ({} {})", k, shape_str(outs[k].shape()), outs[k].dtype()),
                         to_device(outs[k].detach(), kCPU));
  const TensorList& leaves = in.leaves();
  for (size_t i = 0; i < leaves.size(); ++i) {
    const Tensor& g = leaves[i].grad();
    o.items.emplace_back(fmt::format("gradient of input {} ({})", i, shape_str(leaves[i].shape())),
                         g.defined() ? to_device(g, kCPU) : Tensor());
  }
  return o;
}

// Empty when `got` matches `want` (both on the CPU); else what differs.
inline std::string mismatch(const Tensor& want, const Tensor& got, Tol tol) {
  if (want.defined() != got.defined())
    return fmt::format("the reference device gives {} tensor, the tested one {}", want.defined() ? "a" : "no",
                       got.defined() ? "one" : "none");
  if (!want.defined()) return "";
  if (want.shape() != got.shape() || want.dtype() != got.dtype())
    return fmt::format("expected {} {}, got {} {}", shape_str(want.shape()), want.dtype(), shape_str(got.shape()),
                       got.dtype());
  if (!is_floating(want.dtype())) {
    std::vector<int64_t> e = to_dtype(want, DType::Int64).to_vector<int64_t>();
    std::vector<int64_t> a = to_dtype(got, DType::Int64).to_vector<int64_t>();
    int64_t wrong = 0;
    size_t first = 0;
    for (size_t i = 0; i < e.size(); ++i)
      if (a[i] != e[i] && wrong++ == 0) first = i;
    if (wrong == 0) return "";
    return fmt::format("{} of {} values differ; first at flat index {}: expected {}, got {}", wrong, e.size(), first,
                       e[first], a[first]);
  }
  std::vector<double> e = to_dtype(want, DType::Float64).to_vector<double>();
  std::vector<double> a = to_dtype(got, DType::Float64).to_vector<double>();
  int64_t beyond = 0, nonfinite = 0;
  size_t worst_i = 0, first_nonfinite = 0;
  double worst = -1;
  for (size_t i = 0; i < e.size(); ++i) {
    if (!std::isfinite(e[i]) || !std::isfinite(a[i])) {
      const bool same = (std::isnan(e[i]) && std::isnan(a[i])) || e[i] == a[i];
      if (!same && nonfinite++ == 0) first_nonfinite = i;
      continue;
    }
    const double err = std::fabs(a[i] - e[i]), allowed = tol.atol + tol.rtol * std::fabs(e[i]);
    if (err > allowed) ++beyond;
    const double ratio = allowed > 0 ? err / allowed : (err > 0 ? kInf : 0);
    if (ratio > worst) {
      worst = ratio;
      worst_i = i;
    }
  }
  std::string out;
  if (nonfinite > 0)
    out += fmt::format("{} non-finite values differ; first at flat index {}: expected {}, got {}. ", nonfinite,
                       first_nonfinite, e[first_nonfinite], a[first_nonfinite]);
  if (beyond > 0)
    out += fmt::format(
        "{} of {} values beyond atol {:g} + rtol {:g} * |expected|; worst at flat index {}: expected "
        "{:.9g}, got {:.9g} ({:.3g} times the tolerance)",
        beyond, e.size(), tol.atol, tol.rtol, worst_i, e[worst_i], a[worst_i], worst);
  return out;
}

// Runs `c` on both devices and compares everything it produced.
inline void check_agreement(const Case& c, Device reference, Device tested) {
  Outcome want;
  try {
    want = run_case(c, reference);
  } catch (const std::exception& e) {
    FAIL_CHECK(c.name << ": on " << reference.str() << " (the reference) it throws: " << e.what());
    return;
  }
  Outcome got;
  try {
    got = run_case(c, tested);
  } catch (const std::exception& e) {
    FAIL_CHECK(c.name << ": on " << tested.str() << " it throws: " << e.what());
    return;
  }
  REQUIRE(want.items.size() == got.items.size());
  for (size_t i = 0; i < want.items.size(); ++i) {
    const std::string problem = mismatch(want.items[i].second, got.items[i].second, c.tol);
    if (!problem.empty())
      FAIL_CHECK(c.name << ", " << want.items[i].first << ", " << tested.str() << " against " << reference.str() << ": "
                        << problem);
  }
}

inline void require_unique_names(const Cases& cases) {
  // Two sections of one name would silently run only the first.
  std::set<std::string> seen;
  std::string repeated;
  for (const Case& c : cases)
    if (!seen.insert(c.name).second) repeated += " '" + c.name + "'";
  INFO("case names used twice:" << repeated);
  REQUIRE(repeated.empty());
}

// CPU against cuda:0, one section per case.
inline void run_on_cuda(const Cases& cases) {
  require_unique_names(cases);
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) { check_agreement(c, kCPU, kCUDA); }
  }
}

// Every case twice on the CPU: the table itself is valid.
inline void run_on_cpu_twice(const Cases& cases) {
  require_unique_names(cases);
  for (const Case& c : cases) check_agreement(c, kCPU, kCPU);
}

}  // namespace heed::agreement

#define HEED_AGREEMENT_TEST(title, table)                                          \
  TEST_CASE("cuda agreement: " title, "[cuda][agreement]") {                       \
    HEED_SKIP_WITHOUT_GPU();                                                       \
    ::heed::agreement::run_on_cuda(table());                                       \
  }                                                                                \
  TEST_CASE("cuda agreement, CPU against CPU: " title, "[cuda][agreement][cpu]") { \
    ::heed::agreement::run_on_cpu_twice(table());                                  \
  }
