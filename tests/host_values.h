#pragma once
// Writing and reading tensor elements on the host without any kernel of the
// CPU backend: what the GPU tests use to build inputs of any dtype (bfloat16
// included) and to read results back, so that a CPU kernel cannot hide a
// GPU bug or the other way round.
#include <catch2/catch.hpp>

#include <functional>
#include <type_traits>
#include <vector>

#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"

namespace heed::test {

// A CPU tensor of `shape` and `dtype` with element i = f(i), written directly
// (a bfloat16 element is f(i) rounded through float).
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

// The values of any tensor, read on the host in row-major order, as double. A
// GPU tensor is gathered contiguous on the GPU first, then its bytes copied.
inline std::vector<double> values_of(const Tensor& t_any) {
  Tensor t = t_any;
  if (t.device().is_cuda()) {
    t = empty(t_any.shape(), t_any.dtype());
    backend(DeviceType::CUDA).copy(t_any, t);
  }
  REQUIRE(t.is_contiguous());
  std::vector<double> out;
  dispatch_dtype(t.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* p = static_cast<const T*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<double>(static_cast<compute_t<T>>(p[i])));
  });
  return out;
}

}  // namespace heed::test
