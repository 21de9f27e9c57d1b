// Printing tensors the way PyTorch does, through fmt: fmt::format("{}", t).
#include <cmath>
#include <string>

#include "tensor/node.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"

namespace heed {

namespace {

constexpr int64_t kSummariseAbove = 1000;  // elements; larger tensors print edges only
constexpr int64_t kEdgeItems = 3;

std::string format_value(double v, DType dtype) {
  if (dtype == DType::Bool) return v != 0 ? "true" : "false";
  if (!is_floating(dtype)) return fmt::format("{}", static_cast<int64_t>(v));
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.4f}", v);
}

void format_dim(std::string& out, const std::vector<double>& values, const Shape& shape, const Shape& strides,
                size_t dim, int64_t base, DType dtype, bool summarise, int indent) {
  if (dim == shape.size()) {
    out += format_value(values[base], dtype);
    return;
  }
  out += '[';
  int64_t n = shape[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (summarise && n > 2 * kEdgeItems && i == kEdgeItems) {
      out += dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' ');
      i = n - kEdgeItems - 1;
      continue;
    }
    format_dim(out, values, shape, strides, dim + 1, base + i * strides[dim], dtype, summarise, indent + 1);
    if (i + 1 < n) out += dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' ');
  }
  out += ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  Tensor host = to_device(detach(), kCPU);
  std::vector<double> values = host.to_vector<double>();
  std::string out = "tensor(";
  format_dim(out, values, shape(), contiguous_strides(shape()), 0, 0, dtype(), numel() > kSummariseAbove, 7);
  if (dtype() != DType::Float32) out += fmt::format(", dtype={}", dtype());
  if (!device().is_cpu()) out += fmt::format(", device={}", device());
  if (requires_grad()) out += grad_fn() ? fmt::format(", grad_fn=<{}>", grad_fn()->name()) : ", requires_grad=true";
  out += ')';
  return out;
}

}  // namespace heed
