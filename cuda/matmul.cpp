// The CUDA op table's matmul: a [B, M, K] x b [B, K, N] -> out [B, M, N] as
// one cuBLAS strided-batched GEMM (cuda/matmul_layout.h says how row-major
// tensors become cuBLAS's column-major arguments). Operands that are row- or
// column-major matrices with one batch stride (0 included: a broadcast
// operand) are read in place; any other layout is copied to a contiguous
// tensor first.
//
// cuBLAS state: one handle per device, made on first use under a lock and
// kept for the life of the process (destroying handles at exit, after the
// CUDA runtime may have shut down, is what fails), bound to the default
// stream so that it orders with every other heed kernel, with its own
// workspace of 32 MiB on Hopper and later, 4 MiB before (cuBLAS's
// recommendations; plain cudaMalloc, outside the caching allocator's stats).
// The handle's settings never change after creation, so threads may share
// it; TF32 is chosen per call through the compute type, not the math mode.
//
// bfloat16 operands and out go to the same GEMM as CUDA_R_16BF with
// CUBLAS_COMPUTE_32F: the products and sums are float32 (on the tensor
// cores), alpha and beta are float, and each out element is rounded to
// bfloat16 once. The TF32 switch does not apply (bfloat16 inputs already fit
// the tensor cores exactly).
#include "cuda/matmul.h"

#include <atomic>
#include <mutex>
#include <type_traits>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/matmul_layout.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"
#include "tensor/tensor_impl.h"  // storage: the overlap check

namespace heed::cuda {

namespace {

std::atomic<bool> g_allow_tf32{false};

[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  // A failed launch inside cuBLAS may have left a CUDA error behind: clear it.
  cudaGetLastError();
  HEED_FAIL("cuBLAS error {} ({}) in {} at {}:{}", cublasGetStatusName(status), cublasGetStatusString(status), call,
            file, line);
}

#define HEED_CUBLAS_CHECK(call)                                                          \
  do {                                                                                   \
    const cublasStatus_t heed_cublas_status_ = (call);                                   \
    if (heed_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                    \
      throw_cublas_error(heed_cublas_status_, #call, __FILE__, __LINE__);                \
  } while (0)

struct DeviceBlas {
  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// The handle of `device`, which must be the current device (the caller's DeviceGuard).
cublasHandle_t handle_for(int device) {
  static std::mutex mutex;
  static std::vector<DeviceBlas> per_device;  // handles deliberately never destroyed (see the top)
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) >= per_device.size()) per_device.resize(static_cast<size_t>(device) + 1);
  DeviceBlas& blas = per_device[static_cast<size_t>(device)];
  if (blas.handle != nullptr) return blas.handle;

  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;
  HEED_CUBLAS_CHECK(cublasCreate(&handle));
  try {
    // Setting the stream resets the workspace, so the stream goes first.
    HEED_CUBLAS_CHECK(cublasSetStream(handle, 0));  // the default stream, as every heed kernel
    int major = 0;
    HEED_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    const size_t workspace_bytes = (major >= 9 ? 32u : 4u) << 20;
    HEED_CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
    HEED_CUBLAS_CHECK(cublasSetWorkspace(handle, workspace, workspace_bytes));
    HEED_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  } catch (...) {
    cublasDestroy(handle);
    if (workspace != nullptr) cudaFree(workspace);
    throw;
  }
  blas.handle = handle;
  blas.workspace = workspace;
  return handle;
}

template <class T>
void run_gemm(cublasHandle_t handle, const GemmPlan& p, const T* a, const T* b, T* out, bool accumulate) {
  // The scaling type follows the compute type: float for bfloat16's COMPUTE_32F.
  const compute_t<T> alpha = 1, beta = accumulate ? 1 : 0;
  cudaDataType_t type;
  cublasComputeType_t compute;
  if constexpr (std::is_same_v<T, bfloat16>) {
    type = CUDA_R_16BF;
    compute = CUBLAS_COMPUTE_32F;
  } else if constexpr (sizeof(T) == 4) {
    type = CUDA_R_32F;
    compute = g_allow_tf32.load(std::memory_order_relaxed) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  } else {
    type = CUDA_R_64F;
    compute = CUBLAS_COMPUTE_64F;
  }
  HEED_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
      handle, p.transpose_first ? CUBLAS_OP_T : CUBLAS_OP_N, p.transpose_second ? CUBLAS_OP_T : CUBLAS_OP_N, p.m, p.n,
      p.k, &alpha, b, type, p.ld_first, p.stride_first, a, type, p.ld_second, p.stride_second, &beta, out, type,
      p.ld_out, p.stride_out, p.batch, compute, CUBLAS_GEMM_DEFAULT));
}

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend) {
  check_matmul_kernel_args(a, b, out, addend, "cuda");
  HEED_CHECK(out.is_contiguous(), "cuda matmul: out must be contiguous, got {}", describe(out));
  const int64_t batch = out.shape()[0], m = out.shape()[1], n = out.shape()[2], k = a.shape()[2];
  if (batch == 0 || m == 0 || n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  // cuBLAS reads a and b while it writes out, and the copy of an addend below
  // writes out before cuBLAS runs: out must not share storage with an input.
  HEED_CHECK(out.impl()->storage != a.impl()->storage && out.impl()->storage != b.impl()->storage,
             "cuda matmul: out must not share memory with a or b, got a {}, b {}, out {}", describe(a), describe(b),
             describe(out));
  // cuBLAS adds the product to out itself (beta = 1): an addend elsewhere (a
  // broadcast bias, a residual) is copied into out first.
  const bool accumulate = addend.defined();
  const bool addend_is_out = accumulate && addend.raw_data() == out.raw_data() && addend.strides() == out.strides();
  if (accumulate && !addend_is_out) backend(out.device()).copy(addend, out);
  dispatch_floating_or_bf16(a.dtype(), "cuda matmul", [&](auto zero) {
    using T = decltype(zero);
    if (k == 0) {  // empty sums
      if (!accumulate) launch_fill<T>(static_cast<T*>(out.raw_data()), out.numel(), T(0.0f));
      return;
    }
    Tensor a_in = a, b_in = b;
    GemmPlan plan = plan_gemm(a.shape().data(), a.strides().data(), b.shape().data(), b.strides().data());
    if (!plan.a.ok || !plan.b.ok) {
      if (!plan.a.ok) a_in = contiguous_copy(a);
      if (!plan.b.ok) b_in = contiguous_copy(b);
      plan = plan_gemm(a_in.shape().data(), a_in.strides().data(), b_in.shape().data(), b_in.strides().data());
      HEED_CHECK(plan.a.ok && plan.b.ok, "cuda matmul: no cuBLAS layout for {} x {}", describe(a_in),
                 describe(b_in));
    }
    run_gemm<T>(handle_for(device), plan, static_cast<const T*>(a_in.raw_data()),
                static_cast<const T*>(b_in.raw_data()), static_cast<T*>(out.raw_data()), accumulate);
  });
}

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

void install_matmul_kernel(Backend& row) { row.matmul = matmul; }

}  // namespace heed::cuda
