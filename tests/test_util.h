#pragma once
// What the test files share, written once:
//
//  - tensors from literal values on any device: f32(d, {1, 2}, {2}), f64,
//    i64, mask; set_values(p, ...) for a module's parameter;
//  - reading values back: vals (float), max_diff; host_tensor and values_of,
//    which write and read elements on the host without any kernel of the CPU
//    backend, so that a CPU kernel cannot hide a GPU bug or the other way
//    round (the GPU tests build inputs of any dtype with them);
//  - reductions: reduced_shape / reduced_dims of a dims mask, kReduceOps;
//  - comparisons: close / require_close, |got - want| <= tol * (1 + |want|)
//    for every element, NaN only where NaN is wanted, +-inf exactly;
//  - gradients: uniform64 / leaf64 (float64 CPU inputs for gradcheck),
//    gradcheck_on and gradgradcheck_on (gradcheck of a function run on any
//    device), check_param_grad (a parameter's gradient against central
//    differences, on any device);
//  - TempDir, a fresh folder removed at scope exit.
//
// The devices a test runs on are in tests/test_devices.h.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <heed.h>
#include "tensor/backend.h"
#include "tensor/tensor_impl.h"

namespace heed::test {

using Vec = std::vector<double>;

// ---- tensors from values ----------------------------------------------------------

inline Tensor f32(Device d, const std::vector<float>& v, const Shape& s = {}) { return from_vector<float>(v, s, d); }
inline Tensor f64(Device d, const Vec& v, const Shape& s = {}) { return from_vector<double>(v, s, d); }
inline Tensor i64(Device d, const std::vector<int64_t>& v, const Shape& s = {}) {
  return from_vector<int64_t>(v, s, d);
}
inline Tensor mask(Device d, const std::vector<bool>& v, const Shape& s) { return from_vector<bool>(v, s, d); }

// Sets a parameter's values in place, keeping the module's handle (converted
// to its dtype, copied to its device).
inline void set_values(Tensor& p, const Vec& values) {
  NoGradGuard no_grad;
  p.copy_(from_vector<double>(values, p.shape()).to(p.dtype()));
}

// ---- values back ----------------------------------------------------------------------

inline std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }
inline double max_diff(const Tensor& a, const Tensor& b) { return amax(abs(sub(a, b))).item<double>(); }

// A CPU tensor of `shape` and `dtype` with element i (row-major) = f(i),
// written directly (a bfloat16 element is f(i) rounded through float).
inline Tensor host_tensor(const Shape& shape, DType dtype, const std::function<double(int64_t)>& f) {
  Tensor t = empty(shape, dtype);
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, bfloat16>) p[i] = bfloat16(static_cast<float>(f(i)));
      else p[i] = static_cast<T>(f(i));
    }
  });
  return t;
}

// The values of any tensor in row-major order, as double, read on the host: a
// CPU tensor through its strides, a GPU tensor gathered contiguous by the
// CUDA backend's copy first.
inline Vec values_of(const Tensor& t_any) {
  Tensor t = t_any;
  if (t.device().is_cuda()) {
    t = empty(t_any.shape(), t_any.dtype());
    backend(DeviceType::CUDA).copy(t_any, t);
  }
  Vec out;
  const int64_t n = t.numel(), nd = t.dim();
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t off = 0;
    for (int64_t d = 0; d < nd; ++d) off += idx[d] * t.strides()[d];
    dispatch_dtype(t.dtype(), [&](auto zero) {
      using T = decltype(zero);
      out.push_back(static_cast<double>(static_cast<compute_t<T>>(static_cast<const T*>(t.raw_data())[off])));
    });
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < t.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// ---- reductions ---------------------------------------------------------------------

// The keepdim output shape of a reduction over the dims whose bit is set in
// `mask` (those dims become 1).
inline Shape reduced_shape(const Shape& shape, unsigned mask) {
  Shape out = shape;
  for (size_t d = 0; d < shape.size(); ++d)
    if (mask & (1u << d)) out[d] = 1;
  return out;
}
// How many of `shape`'s dims `mask` reduces.
inline int reduced_dims(const Shape& shape, unsigned mask) {
  int n = 0;
  for (size_t d = 0; d < shape.size(); ++d) n += (mask >> d) & 1u;
  return n;
}
// Every op of Backend::reduce; the index ones (argmax, argmin) take one dim.
inline const std::vector<ReduceOp> kReduceOps = {ReduceOp::Sum, ReduceOp::Prod,   ReduceOp::Max,
                                                 ReduceOp::Min, ReduceOp::ArgMax, ReduceOp::ArgMin};
inline bool is_index_reduce(ReduceOp op) { return op == ReduceOp::ArgMax || op == ReduceOp::ArgMin; }

// ---- comparisons --------------------------------------------------------------------

// |got - want| <= tol * (1 + |want|); NaN only where NaN is wanted, +-inf exactly.
inline bool close(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::abs(got - want) <= tol * (1.0 + std::abs(want));
}

inline void require_close(const Vec& got, const Vec& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(close(got[i], want[i], tol));
  }
}

// A tensor of any float dtype, on any device, against values.
inline void require_close(const Tensor& got, const Vec& want, double tol) {
  require_close(got.to_vector<double>(), want, tol);
}

// Two tensors (both undefined passes), same shape.
inline void require_close(const Tensor& got, const Tensor& want, double tol) {
  REQUIRE(got.defined() == want.defined());
  if (!got.defined()) return;
  REQUIRE(got.shape() == want.shape());
  require_close(got.to_vector<double>(), want.to_vector<double>(), tol);
}

// ---- gradients ------------------------------------------------------------------------

// Uniform float64 values on the CPU from a seed (gradcheck's inputs).
inline Tensor uniform64(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  Generator g(seed);
  return uniform(s, lo, hi, &g, DType::Float64);
}
// The same, as a leaf that requires grad.
inline Tensor leaf64(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  return uniform64(s, seed, lo, hi).requires_grad_();
}

// gradcheck needs float64 leaves on the CPU: these wrap f so that it moves
// its inputs to `device`, runs there and brings the result back (both moves
// are differentiable), and the Jacobian checked is the device's. On the CPU
// they are gradcheck and gradgradcheck of f.
inline GradcheckFn on_device(Device device, const GradcheckFn& f) {
  return [device, f](const TensorList& in) {
    TensorList moved;
    for (const Tensor& t : in) moved.push_back(t.defined() ? to_device(t, device) : t);
    return to_device(f(moved), kCPU);
  };
}
inline bool gradcheck_on(Device device, const GradcheckFn& f, const TensorList& inputs,
                         const GradcheckOptions& options = {}) {
  return gradcheck(on_device(device, f), inputs, options);
}
inline bool gradgradcheck_on(Device device, const GradcheckFn& f, const TensorList& inputs,
                             const GradcheckOptions& options = {}) {
  return gradgradcheck(on_device(device, f), inputs, options);
}

// p.grad() of loss() against central differences (step 1e-6), entry by entry,
// for a float64 parameter on any device. Each entry is bumped in place through
// the op layer and restored exactly from a copy.
inline void check_param_grad(Tensor& p, const std::function<Tensor()>& loss) {
  p.zero_grad();
  loss().backward();
  REQUIRE(p.grad().defined());
  REQUIRE(p.grad().device() == p.device());
  const Vec analytic = p.grad().to_vector<double>();
  const Tensor saved = p.detach().clone();
  const double eps = 1e-6;
  for (int64_t i = 0; i < p.numel(); ++i) {
    Vec one(static_cast<size_t>(p.numel()), 0.0);
    one[static_cast<size_t>(i)] = 1.0;
    const Tensor bump = from_vector<double>(one, p.shape(), p.device());
    double lp, lm;
    {
      NoGradGuard no_grad;
      p.add_(bump, eps);
      lp = loss().item<double>();
      p.copy_(saved);
      p.add_(bump, -eps);
      lm = loss().item<double>();
      p.copy_(saved);
    }
    INFO("entry " << i);
    REQUIRE(analytic[static_cast<size_t>(i)] == Approx((lp - lm) / (2 * eps)).margin(1e-6).epsilon(1e-4));
  }
}

// ---- files --------------------------------------------------------------------------

// A fresh folder under the system's temporary folder, unique to this process
// and this object, removed with everything in it at scope exit (its
// permissions restored first, for tests that take them away).
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int count = 0;
    path = std::filesystem::temp_directory_path() /
           ("heed_test_" + std::to_string(::getpid()) + "_" + std::to_string(count++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  // The names in the folder, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

}  // namespace heed::test
