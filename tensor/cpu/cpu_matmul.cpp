// Batched matrix product a [B, M, K] x b [B, K, N] -> out [B, M, N] through
// heed::cpu::gemm, which takes any (row, column) strides: transposed, sliced
// and broadcast (batch stride 0) operands are multiplied in place, never copied.
//
// gemm parallelises inside one product. Many small products (attention heads)
// give it too little work each, so then the batch is split instead: each
// product still runs whole on one thread (gemm called from inside a chunk runs
// inline), and gemm's result does not depend on the thread count, so neither
// does ours.
#include <algorithm>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/gemm.h"
#include "tensor/cpu/parallel.h"

namespace heed::cpu {
namespace {

// Below this many multiply-adds per product, split the batch rather than the product.
constexpr int64_t kSmallProduct = 128 * 128 * 128;

template <class T>
void batched_gemm(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend) {
  const Shape& as = a.strides();  // a [B, M, K]
  const Shape& bs = b.strides();  // b [B, K, N]
  const Shape& os = out.strides();  // out [B, M, N]
  const int64_t batch = out.shape()[0], m = out.shape()[1], n = out.shape()[2], k = a.shape()[2];
  const T* pa = static_cast<const T*>(a.raw_data());
  const T* pb = static_cast<const T*>(b.raw_data());
  T* po = static_cast<T*>(out.raw_data());
  if (batch == 0 || m == 0 || n == 0) return;
  // Without an addend the product overwrites out (beta 0, out never read).
  const Tensor& d = addend.defined() ? addend : out;
  const Shape& ds = d.strides();
  const T* pd = static_cast<const T*>(d.raw_data());
  const T beta = addend.defined() ? T(1) : T(0);
  auto one = [&](int64_t i) {
    gemm_add(m, n, k, T(1), pa + i * as[0], as[1], as[2], pb + i * bs[0], bs[1], bs[2], beta, pd + i * ds[0], ds[1],
             ds[2], po + i * os[0], os[1], os[2]);
  };
  if (batch > 1 && m * n * k < kSmallProduct) {
    // A chunk of products per task, about kSmallProduct multiply-adds each.
    const int64_t grain = std::max<int64_t>(1, kSmallProduct / std::max<int64_t>(1, m * n * k));
    parallel_for(0, batch, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i);
  }
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend) {
  check_matmul_kernel_args(a, b, out, addend, "cpu");
  if (a.dtype() == DType::BFloat16) {  // float32 products and sums, like cuBLAS's bf16 GEMM
    Tensor out32 = addend.defined() ? widened(addend) : float32_like(out);
    matmul(widened(a), widened(b), out32, addend.defined() ? out32 : Tensor());
    return store_rounded(out32, out);
  }
  dispatch_floating(a.dtype(), "cpu matmul", [&](auto zero) { batched_gemm<decltype(zero)>(a, b, out, addend); });
}

}  // namespace heed::cpu
