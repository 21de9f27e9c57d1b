#include "tests/reference/compare.h"

#include <cmath>

#include "tensor/grad_mode.h"
#include "tensor/ops.h"

namespace heed::reference {

namespace {
// "[1, 0, 3]": the index of flat entry i in a row-major tensor of `shape`.
std::string index_str(int64_t i, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] == 0 ? 0 : i % shape[d];
    i = shape[d] == 0 ? 0 : i / shape[d];
  }
  return shape_str(idx);
}

bool is_integer_like(DType t) { return t == DType::Int64 || t == DType::UInt8 || t == DType::Bool; }
}  // namespace

void compare(const std::string& name, const Tensor& got_in, const Tensor& want, double rtol, double atol,
             Comparison& c) {
  if (!got_in.defined()) {
    c.problems.push_back(fmt::format("{}: heed gave an undefined tensor", name));
    return;
  }
  if (got_in.shape() != want.shape()) {
    c.problems.push_back(fmt::format("{}: heed shape {}, reference shape {}", name, shape_str(got_in.shape()),
                                     shape_str(want.shape())));
    return;
  }
  NoGradGuard no_grad;
  Tensor got = contiguous(to_device(got_in.detach(), kCPU));

  if (is_integer_like(want.dtype())) {
    if (!is_integer_like(got.dtype())) {
      c.problems.push_back(fmt::format("{}: heed gave {}, reference is {} (compared exactly)", name, got.dtype(),
                                       want.dtype()));
      return;
    }
    std::vector<int64_t> a = to_dtype(got, DType::Int64).to_vector<int64_t>();
    std::vector<int64_t> e = to_dtype(want, DType::Int64).to_vector<int64_t>();
    int64_t wrong = 0, first = -1;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] != e[i]) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++wrong;
      }
    if (wrong > 0)
      c.problems.push_back(fmt::format("{}: {} of {} integers differ; first at {}: heed {}, reference {}", name, wrong,
                                       a.size(), index_str(first, want.shape()), a[first], e[first]));
    return;
  }
  if (!got.is_floating_point()) {
    c.problems.push_back(fmt::format("{}: heed gave {}, reference is {}", name, got.dtype(), want.dtype()));
    return;
  }

  std::vector<double> a = to_dtype(got, DType::Float64).to_vector<double>();
  std::vector<double> e = to_dtype(want, DType::Float64).to_vector<double>();
  double worst = 0;
  int64_t worst_i = -1, beyond = 0, nonfinite_wrong = 0, first_nonfinite = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(e[i])) {
      // NaN matches NaN; an infinity matches the same infinity; nothing else.
      bool same = (std::isnan(a[i]) && std::isnan(e[i])) || a[i] == e[i];
      if (!same) {
        if (first_nonfinite < 0) first_nonfinite = static_cast<int64_t>(i);
        ++nonfinite_wrong;
      }
      continue;
    }
    double ratio = std::fabs(a[i] - e[i]) / (atol + rtol * std::fabs(e[i]));
    if (ratio > 1) ++beyond;
    if (ratio > worst || worst_i < 0) {
      worst = ratio;
      worst_i = static_cast<int64_t>(i);
    }
  }
  if (worst > c.worst || c.worst_at.empty()) {
    c.worst = worst;
    c.worst_at = name;
  }
  if (nonfinite_wrong > 0)
    c.problems.push_back(fmt::format("{}: {} non-finite entries differ; first at {}: heed {}, reference {}", name,
                                     nonfinite_wrong, index_str(first_nonfinite, want.shape()), a[first_nonfinite],
                                     e[first_nonfinite]));
  if (beyond > 0)
    c.problems.push_back(fmt::format(
        "{}: {} of {} entries beyond atol {:g} + rtol {:g} * |ref|; worst at {}: heed {:.9g}, reference {:.9g} "
        "(ratio {:.3g})",
        name, beyond, a.size(), atol, rtol, index_str(worst_i, want.shape()), a[worst_i], e[worst_i], worst));
}

}  // namespace heed::reference
