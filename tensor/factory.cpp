// Creating tensors: empty/zeros/ones/full, from host data, ranges, and random
// draws from the counter-based generator.
#include <cmath>
#include <cstring>

#include "tensor/op_helpers.h"
#include "tensor/philox.h"

namespace heed {

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape)
    HEED_CHECK(s >= 0, "empty: shape {} has a negative size", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(numel_of(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (t.numel() > 0) detail::kernel(device, &Backend::fill, "full")(t, value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype(), t.device()); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  HEED_CHECK(numel_of(s) == static_cast<int64_t>(values.size()),
             "from_vector: {} values do not fill shape {} ({} elements)", values.size(), shape_str(s), numel_of(s));
  Tensor host = empty(s, dtype_of<T>::value, kCPU);
  T* p = host.data_ptr<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];  // std::vector<bool> has no data()
  return device.is_cpu() ? host : to_device(host, device);
}
template Tensor from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector(const std::vector<uint8_t>&, const Shape&, Device);
template Tensor from_vector(const std::vector<bool>&, const Shape&, Device);
template Tensor from_vector(const std::vector<bfloat16>&, const Shape&, Device);

Tensor tensor(std::initializer_list<float> values, const Shape& shape) {
  return from_vector(std::vector<float>(values), shape);
}

Tensor arange(int64_t end, DType dtype, Device device) { return arange(0, static_cast<double>(end), 1, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  HEED_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
             "arange: need finite start, end and a non-zero step, got start={}, end={}, step={}", start, end, step);
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  std::vector<double> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = start + static_cast<double>(i) * step;
  return to_device(to_dtype(from_vector(values), dtype), device);
}

// ---- random ----
namespace {
Tensor draw(const char* op, RandomDist dist, double a, double b, const Shape& shape, Generator* gen, DType dtype,
            Device device) {
  Generator& g = gen ? *gen : default_generator();
  Tensor out = empty(shape, dtype, device);
  // Whole Philox blocks per draw (tensor/philox.h): draws never share one.
  uint64_t words = static_cast<uint64_t>(out.numel()) *
                   philox_words(dist == RandomDist::Normal, dtype == DType::Float64 && dist != RandomDist::Bernoulli);
  uint64_t offset = g.advance((words + 3) / 4);
  if (out.numel() > 0) detail::kernel(device, &Backend::random, op)(dist, a, b, g.seed(), offset, out);
  return out;
}
}  // namespace

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

Tensor uniform(const Shape& shape, double low, double high, Generator* gen, DType dtype, Device device) {
  HEED_CHECK(is_floating(dtype), "uniform: dtype must be a float dtype (float32, float64 or bfloat16), got {}", dtype);
  HEED_CHECK(low <= high, "uniform: low ({}) must not exceed high ({})", low, high);
  return draw("uniform", RandomDist::Uniform, low, high, shape, gen, dtype, device);
}

Tensor normal(const Shape& shape, double mean, double std, Generator* gen, DType dtype, Device device) {
  HEED_CHECK(is_floating(dtype), "normal: dtype must be a float dtype (float32, float64 or bfloat16), got {}", dtype);
  HEED_CHECK(std >= 0, "normal: std must be >= 0, got {}", std);
  return draw("normal", RandomDist::Normal, mean, std, shape, gen, dtype, device);
}

Tensor rand(const Shape& shape, Generator* gen, DType dtype, Device device) {
  return uniform(shape, 0, 1, gen, dtype, device);
}

Tensor randn(const Shape& shape, Generator* gen, DType dtype, Device device) {
  return normal(shape, 0, 1, gen, dtype, device);
}

Tensor bernoulli(const Shape& shape, double p, Generator* gen, DType dtype, Device device) {
  HEED_CHECK(p >= 0 && p <= 1, "bernoulli: p must be in [0, 1], got {}", p);
  HEED_CHECK(dtype != DType::Int64, "bernoulli: dtype must be float, bool or uint8, got {}", dtype);
  return draw("bernoulli", RandomDist::Bernoulli, p, 0, shape, gen, dtype, device);
}

}  // namespace heed
