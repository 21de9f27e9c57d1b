// Fused layer norm over the last dim of a contiguous x [R, D] on the GPU,
// forward and backward, float32, float64 and bfloat16, with the CPU's
// arithmetic (tensor/cpu/cpu_norm.cpp).
//
// T is the stored type and C = compute_t<T> the one the formulas run in: T
// for float32 and float64; float for bfloat16, whose elements are widened on
// load and whose results (y, gx, gw, gb) are rounded once on store. mean and
// rstd are kept in C (float32 for bfloat16 x: heed::compute_dtype).
//
// Forward: one group of threads per row (cuda/reduce_plan.h's plan_rows).
// Two passes fold in double: the mean, then the biased variance as the mean
// of (x - mean)^2 (two-pass, so no cancellation); rstd = 1 / sqrt(var + eps).
// mean and rstd are written as C, and y = (x - mean) * rstd * w + b is
// computed in C from them, each product rounded as on the CPU (mul_rn).
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
//
// What float64 agreement with the CPU this promises. Both devices run the
// same formulas in double but add each row's sums in another order, so their
// means differ by up to about d * u * |mean| (u = 2^-53; recursive summation's
// bound, with d the row length) and rstd by d * u * rstd (the two-pass
// variance does not see the mean's error to first order). Everything built
// from x - mean carries the mean's error relative to the row's spread: with
// the row's condition cond = 1 + |mean| * rstd (about |mean| / std), per row
//   |y - y_cpu|   <= (d + 64) * u * cond * (max |y| + max |w|)
//   |gx - gx_cpu| <= (d + 64) * u * cond * (max |gx| + rstd * max |g * w|)
//   |mean - mean_cpu| <= (d + 64) * u * max |x|,  |rstd - rstd_cpu| <= (d + 64) * u * rstd
// and per column, over R rows,
//   |gw - gw_cpu| <= (d + R + 64) * u * sum over rows of cond * |g| * (1 + |xhat|)
//   |gb - gb_cpu| <= (R + 64) * u * sum over rows of |g|.
// A row of mean 1000 and std 3 (cond ~ 330) may thus differ from the CPU in
// the 12th digit of gx: cancellation in x - mean, not a bug. (float32 rows
// sum in double too, so they agree to a few float ulps; bfloat16 results to
// one bfloat16 ulp but for values within a float ulp of a rounding tie.)
// tests/cuda_reduce_plan_test.cpp checks exactly these bounds.
#include "cuda/check.h"
#include "cuda/group_reduce.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce_plan.h"

namespace heed::cuda {

namespace {

// Block (group threads, rows per block), grid (blocks).
// x, out: [rows, d]; weight, bias: [d] or null; mean, rstd: [rows].
template <class T, class C = compute_t<T>>
__global__ void __launch_bounds__(kMaxGroupThreads)
    layer_norm_kernel(const T* x, const T* weight, const T* bias, double eps, T* out, C* mean, C* rstd, int64_t rows,
                      int64_t d) {
  __shared__ double shared[32];
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const T* xr = x + (active ? row : 0) * d;

    double sum = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) sum += static_cast<double>(static_cast<C>(xr[j]));
    sum = group_reduce(sum, AddMerge(), shared);
    const double mu = sum / static_cast<double>(d);

    double sq = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const double c = static_cast<double>(static_cast<C>(xr[j])) - mu;
        sq += mul_rn(c, c);
      }
    sq = group_reduce(sq, AddMerge(), shared);
    if (!active) continue;

    const double inv = 1.0 / sqrt(sq / static_cast<double>(d) + eps);
    if (threadIdx.x == 0) {
      mean[row] = static_cast<C>(mu);
      rstd[row] = static_cast<C>(inv);
    }
    const C m = static_cast<C>(mu), s = static_cast<C>(inv);
    T* yr = out + row * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      C y = mul_rn(static_cast<C>(xr[j]) - m, s);
      if (weight) y = mul_rn(y, static_cast<C>(weight[j]));
      if (bias) y = y + static_cast<C>(bias[j]);
      yr[j] = static_cast<T>(y);
    }
  }
}

// grad_x, a group per row. grad, x, grad_x: [rows, d]; weight: [d] or null; mean, rstd: [rows].
template <class T, class C = compute_t<T>>
__global__ void __launch_bounds__(kMaxGroupThreads)
    layer_norm_grad_x_kernel(const T* grad, const T* x, const T* weight, const C* mean, const C* rstd, T* grad_x,
                             int64_t rows, int64_t d) {
  __shared__ double shared[32];
  const int64_t per_grid = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.y; base < rows; base += per_grid) {
    const int64_t row = base + threadIdx.y;
    const bool active = row < rows;
    const int64_t at = (active ? row : 0) * d;
    const T* gr = grad + at;
    const T* xr = x + at;
    const C m = active ? mean[row] : C(0), s = active ? rstd[row] : C(0);

    double sum_gxhat = 0, sum_gxhat_xhat = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const C xhat = (static_cast<C>(xr[j]) - m) * s;
        const C gxhat = weight ? mul_rn(static_cast<C>(gr[j]), static_cast<C>(weight[j])) : static_cast<C>(gr[j]);
        sum_gxhat += static_cast<double>(gxhat);
        sum_gxhat_xhat += mul_rn(static_cast<double>(gxhat), static_cast<double>(xhat));
      }
    sum_gxhat = group_reduce(sum_gxhat, AddMerge(), shared);
    sum_gxhat_xhat = group_reduce(sum_gxhat_xhat, AddMerge(), shared);
    if (!active) continue;

    const C a = static_cast<C>(sum_gxhat / static_cast<double>(d));
    const C c = static_cast<C>(sum_gxhat_xhat / static_cast<double>(d));
    T* out = grad_x + at;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const C xhat = (static_cast<C>(xr[j]) - m) * s;
      const C gxhat = weight ? mul_rn(static_cast<C>(gr[j]), static_cast<C>(weight[j])) : static_cast<C>(gr[j]);
      out[j] = static_cast<T>(mul_rn(s, (gxhat - a) - mul_rn(xhat, c)));
    }
  }
}

constexpr int kColX = ColumnSumLaunch::kBlockX, kColY = ColumnSumLaunch::kBlockY;

// Partial column sums of g * xhat and g over one chunk of rows.
// Block (32, 8), grid (col_blocks, chunks). grad, x: [rows, d]; mean, rstd: [rows];
// partial: [chunks, 2, d] (sums of g * xhat, then of g).
template <class T, class C = compute_t<T>>
__global__ void layer_norm_grad_params_kernel(const T* grad, const T* x, const C* mean, const C* rstd, int64_t rows,
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
        const C g = static_cast<C>(grad[r * d + j]);
        const C xhat = (static_cast<C>(x[r * d + j]) - mean[r]) * rstd[r];
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
void launch_layer_norm(const T* x, const T* weight, const T* bias, double eps, T* out, compute_t<T>* mean,
                       compute_t<T>* rstd, int64_t rows, int64_t d) {
  if (rows <= 0 || d <= 0) return;
  launch_rows(layer_norm_kernel<T>, rows, d, x, weight, bias, eps, out, mean, rstd, rows, d);
}

int64_t layer_norm_backward_workspace(int64_t rows, int64_t d) { return plan_column_sums(rows, d).chunks * 2 * d; }

template <class T>
void launch_layer_norm_backward(const T* grad, const T* x, const T* weight, const compute_t<T>* mean,
                                const compute_t<T>* rstd, T* grad_x, T* grad_weight, T* grad_bias, int64_t rows,
                                int64_t d, double* workspace) {
  if (rows < 0 || d <= 0) return;
  if (grad_x && rows > 0)
    launch_rows(layer_norm_grad_x_kernel<T>, rows, d, grad, x, weight, mean, rstd, grad_x, rows, d);
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

#define HEED_INSTANTIATE_LAYER_NORM(T)                                                                      \
  template void launch_layer_norm<T>(const T*, const T*, const T*, double, T*, compute_t<T>*, compute_t<T>*,    \
                                     int64_t, int64_t);                                                         \
  template void launch_layer_norm_backward<T>(const T*, const T*, const T*, const compute_t<T>*,                \
                                              const compute_t<T>*, T*, T*, T*, int64_t, int64_t, double*);
HEED_INSTANTIATE_LAYER_NORM(float)
HEED_INSTANTIATE_LAYER_NORM(double)
HEED_INSTANTIATE_LAYER_NORM(bfloat16)
#undef HEED_INSTANTIATE_LAYER_NORM

}  // namespace heed::cuda
