// Fused layer norm over the last dim of a contiguous x [R, D] on the GPU,
// forward and backward, float32 and float64, with the CPU's arithmetic
// (tensor/cpu/cpu_norm.cpp).
//
// Forward: one group of threads per row (cuda/reduce_plan.h's plan_rows).
// Two passes fold in double: the mean, then the biased variance as the mean
// of (x - mean)^2 (two-pass, so no cancellation); rstd = 1 / sqrt(var + eps).
// mean and rstd are written as T, and y = (x - mean) * rstd * w + b is
// computed in T from them, each product rounded as on the CPU (mul_rn).
//
// Backward, with xhat = (x - mean) * rstd and gxhat = g * w:
//   gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
// per row, again a group per row (the two means fold in double); and
//   gw = sum over rows of g * xhat,   gb = sum over rows of g
// as column sums: a block of 32 adjacent columns by 8 interleaved rows reads
// g and x a row segment at a time (coalesced), and the rows are cut into
// chunks by plan_column_sums (from R and D only). Each chunk folds its rows
// in double, combines its 8 row slices in a fixed tree and writes a partial
// [2, D] to the workspace; a second kernel adds the chunks in chunk order and
// writes gw and gb. No atomics, so gradients are the same bits every run.
// The sums are the CPU's in double, added in another order. With no rows,
// grad_weight and grad_bias are written as zeros, as on the CPU.
#include "cuda/check.h"
#include "cuda/group_reduce.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_plan.h"

namespace heed::cuda {

namespace {

// Block (group threads, rows per block), grid (blocks).
// x, out: [rows, d]; weight, bias: [d] or null; mean, rstd: [rows].
template <class T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    layer_norm_kernel(const T* x, const T* weight, const T* bias, double eps, T* out, T* mean, T* rstd, int64_t rows,
                      int64_t d) {
  __shared__ double shared[32];
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const T* xr = x + (active ? row : 0) * d;

    double sum = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) sum += static_cast<double>(xr[j]);
    sum = group_reduce(sum, AddMerge(), shared);
    const double mu = sum / static_cast<double>(d);

    double sq = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const double c = static_cast<double>(xr[j]) - mu;
        sq += mul_rn(c, c);
      }
    sq = group_reduce(sq, AddMerge(), shared);
    if (!active) continue;

    const double inv = 1.0 / sqrt(sq / static_cast<double>(d) + eps);
    if (threadIdx.x == 0) {
      mean[row] = static_cast<T>(mu);
      rstd[row] = static_cast<T>(inv);
    }
    const T m = static_cast<T>(mu), s = static_cast<T>(inv);
    T* yr = out + row * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      T y = mul_rn(xr[j] - m, s);
      if (weight) y = mul_rn(y, weight[j]);
      if (bias) y = y + bias[j];
      yr[j] = y;
    }
  }
}

// grad_x, a group per row. grad, x, grad_x: [rows, d]; weight: [d] or null; mean, rstd: [rows].
template <class T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    layer_norm_grad_x_kernel(const T* grad, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                             int64_t rows, int64_t d) {
  __shared__ double shared[32];
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const int64_t at = (active ? row : 0) * d;
    const T* gr = grad + at;
    const T* xr = x + at;
    const T m = active ? mean[row] : T(0), s = active ? rstd[row] : T(0);

    double sum_gxhat = 0, sum_gxhat_xhat = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const T xhat = (xr[j] - m) * s;
        const T gxhat = weight ? mul_rn(gr[j], weight[j]) : gr[j];
        sum_gxhat += static_cast<double>(gxhat);
        sum_gxhat_xhat += mul_rn(static_cast<double>(gxhat), static_cast<double>(xhat));
      }
    sum_gxhat = group_reduce(sum_gxhat, AddMerge(), shared);
    sum_gxhat_xhat = group_reduce(sum_gxhat_xhat, AddMerge(), shared);
    if (!active) continue;

    const T a = static_cast<T>(sum_gxhat / static_cast<double>(d));
    const T c = static_cast<T>(sum_gxhat_xhat / static_cast<double>(d));
    T* out = grad_x + at;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const T xhat = (xr[j] - m) * s;
      const T gxhat = weight ? mul_rn(gr[j], weight[j]) : gr[j];
      out[j] = mul_rn(s, (gxhat - a) - mul_rn(xhat, c));
    }
  }
}

constexpr int kColX = ColumnSumLaunch::kBlockX, kColY = ColumnSumLaunch::kBlockY;

// Partial column sums of g * xhat and g over one chunk of rows.
// Block (32, 8), grid (col_blocks, chunks). grad, x: [rows, d]; mean, rstd: [rows];
// partial: [chunks, 2, d] (sums of g * xhat, then of g).
template <class T>
__global__ void layer_norm_grad_params_kernel(const T* grad, const T* x, const T* mean, const T* rstd, int64_t rows,
                                              int64_t d, int64_t rows_per_chunk, double* partial) {
  __shared__ double shared_w[kColY][kColX];
  __shared__ double shared_b[kColY][kColX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * kColX; base < d; base += static_cast<int64_t>(gridDim.x) * kColX) {
    const int64_t j = base + tx;
    double sum_w = 0, sum_b = 0;
    if (j < d)
      for (int64_t r = r0 + ty; r < r1; r += kColY) {
        const T g = grad[r * d + j];
        const T xhat = (x[r * d + j] - mean[r]) * rstd[r];
        sum_w += mul_rn(static_cast<double>(g), static_cast<double>(xhat));
        sum_b += static_cast<double>(g);
      }
    shared_w[ty][tx] = sum_w;
    shared_b[ty][tx] = sum_b;
    __syncthreads();
    for (int half = kColY / 2; half > 0; half /= 2) {
      if (ty < half) {
        shared_w[ty][tx] += shared_w[ty + half][tx];
        shared_b[ty][tx] += shared_b[ty + half][tx];
      }
      __syncthreads();
    }
    if (ty == 0 && j < d) {
      partial[(chunk * 2) * d + j] = shared_w[0][tx];
      partial[(chunk * 2 + 1) * d + j] = shared_b[0][tx];
    }
    __syncthreads();  // shared is rewritten in the next iteration
  }
}

// Adds the chunks' partials [chunks, 2, d] in chunk order into grad_weight, grad_bias [d] (either may be null).
template <class T>
__global__ void layer_norm_grad_params_finish_kernel(const double* partial, int64_t chunks, int64_t d, T* grad_weight,
                                                     T* grad_bias) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < d; j += stride) {
    double w = 0, b = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      w += partial[(c * 2) * d + j];
      b += partial[(c * 2 + 1) * d + j];
    }
    if (grad_weight) grad_weight[j] = static_cast<T>(w);
    if (grad_bias) grad_bias[j] = static_cast<T>(b);
  }
}

}  // namespace

template <class T>
void launch_layer_norm(const T* x, const T* weight, const T* bias, double eps, T* out, T* mean, T* rstd, int64_t rows,
                       int64_t d) {
  if (rows <= 0 || d <= 0) return;
  const RowLaunch l = plan_rows(rows, d);
  const dim3 block(static_cast<unsigned>(l.threads), static_cast<unsigned>(l.rows_per_block));
  layer_norm_kernel<T><<<static_cast<unsigned>(l.blocks), block>>>(x, weight, bias, eps, out, mean, rstd, rows, d);
  HEED_CUDA_CHECK(cudaGetLastError());
}

int64_t layer_norm_backward_workspace(int64_t rows, int64_t d) { return plan_column_sums(rows, d).chunks * 2 * d; }

template <class T>
void launch_layer_norm_backward(const T* grad, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                                T* grad_weight, T* grad_bias, int64_t rows, int64_t d, double* workspace) {
  if (rows < 0 || d <= 0) return;
  if (grad_x && rows > 0) {
    const RowLaunch l = plan_rows(rows, d);
    const dim3 block(static_cast<unsigned>(l.threads), static_cast<unsigned>(l.rows_per_block));
    layer_norm_grad_x_kernel<T><<<static_cast<unsigned>(l.blocks), block>>>(grad, x, weight, mean, rstd, grad_x, rows,
                                                                             d);
    HEED_CUDA_CHECK(cudaGetLastError());
  }
  if (grad_weight || grad_bias) {
    const ColumnSumLaunch l = plan_column_sums(rows, d);
    const dim3 grid(static_cast<unsigned>(l.col_blocks), static_cast<unsigned>(l.chunks));
    layer_norm_grad_params_kernel<T><<<grid, dim3(kColX, kColY)>>>(grad, x, mean, rstd, rows, d, l.rows_per_chunk,
                                                                   workspace);
    HEED_CUDA_CHECK(cudaGetLastError());
    constexpr int kThreads = 256;
    const int64_t blocks = std::clamp<int64_t>(ceil_div(d, kThreads), 1, kMaxGridX);
    layer_norm_grad_params_finish_kernel<T><<<static_cast<unsigned>(blocks), kThreads>>>(workspace, l.chunks, d,
                                                                                         grad_weight, grad_bias);
    HEED_CUDA_CHECK(cudaGetLastError());
  }
}

template void launch_layer_norm<float>(const float*, const float*, const float*, double, float*, float*, float*,
                                       int64_t, int64_t);
template void launch_layer_norm<double>(const double*, const double*, const double*, double, double*, double*, double*,
                                        int64_t, int64_t);
template void launch_layer_norm_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                                float*, float*, float*, int64_t, int64_t, double*);
template void launch_layer_norm_backward<double>(const double*, const double*, const double*, const double*,
                                                 const double*, double*, double*, double*, int64_t, int64_t, double*);

}  // namespace heed::cuda
