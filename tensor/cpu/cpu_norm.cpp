// Fused layer norm over the last dim of a contiguous x [R, D] (R = leading
// dims flattened), forward and backward, float32 and float64.
//
// Forward, per row: mean and variance (biased) in double (8 lanes), then
// y = (x - mean) * rstd * w + b in one pass; mean and rstd = 1/sqrt(var + eps)
// are written out for the backward. Backward, with xhat = (x - mean) * rstd
// and gxhat = g * w:
//   gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
//   gw = sum over rows of g * xhat,   gb = sum over rows of g.
// gw and gb are sums over rows: rows are cut into fixed blocks of kRowBlock
// (a cut that depends on R only), each block sums its rows in order into a
// double buffer of its own, and the blocks are added in block order, so the
// result is the same for every thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/cpu_bfloat16.h"
#include "tensor/cpu/isa_clones.h"
#include "tensor/cpu/lane_sum.h"
#include "tensor/cpu/parallel.h"
#include "tensor/cpu/strided_loop.h"

namespace heed::cpu {
namespace {

constexpr int64_t kRowBlock = 32;  // rows per task and per partial sum of gw, gb

// ---- one row, at the CPU's full vector width ----------------------------------
// The row loops are written once (always_inline templates) and, for float32,
// compiled for AVX-512, AVX2 and baseline x86-64 (isa_clones.h; this file is
// built with -ffp-contract=off, so every clone gives the baseline's bits).
// A row's sums run in double lanes (lane_sum.h).

// y = (x - mean) * rstd * w + b over one row; writes the row's mean and rstd.
template <class T>
__attribute__((always_inline)) inline void forward_row(const T* xr, int64_t d, const T* pw, const T* pb, double eps,
                                                       T* yr, T* mean, T* rstd) {
  const double mu = lane_sum(d, [&](int64_t j) { return static_cast<double>(xr[j]); }) / d;
  const double sq = lane_sum(d, [&](int64_t j) {
    const double c = xr[j] - mu;
    return c * c;
  });
  const double inv = 1.0 / std::sqrt(sq / d + eps);
  *mean = static_cast<T>(mu);
  *rstd = static_cast<T>(inv);
  const T m = static_cast<T>(mu), s = static_cast<T>(inv);
  if (pw && pb) {
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * s * pw[j] + pb[j];
  } else if (pw) {
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * s * pw[j];
  } else if (pb) {
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * s + pb[j];
  } else {
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * s;
  }
}

// One row of the backward: gx (when out is set) and the row's terms of the
// gw and gb sums (when pgw / pgb are set). xhat and gxhat are scratch [d].
template <class T>
__attribute__((always_inline)) inline void backward_row(const T* gr, const T* xr, const T* pw, T m, T s, int64_t d,
                                                        T* xhat, T* gxhat, double* pgw, double* pgb, T* out) {
  for (int64_t j = 0; j < d; ++j) {
    xhat[j] = (xr[j] - m) * s;
    gxhat[j] = pw ? gr[j] * pw[j] : gr[j];
  }
  if (pgw)
    for (int64_t j = 0; j < d; ++j) pgw[j] += static_cast<double>(gr[j]) * xhat[j];
  if (pgb)
    for (int64_t j = 0; j < d; ++j) pgb[j] += gr[j];
  if (!out) return;
  const double sum_gxhat = lane_sum(d, [&](int64_t j) { return static_cast<double>(gxhat[j]); });
  const double sum_gxhat_xhat =
      lane_sum(d, [&](int64_t j) { return static_cast<double>(gxhat[j]) * static_cast<double>(xhat[j]); });
  const T a = static_cast<T>(sum_gxhat / d), c = static_cast<T>(sum_gxhat_xhat / d);
  for (int64_t j = 0; j < d; ++j) out[j] = s * (gxhat[j] - a - xhat[j] * c);
}

HEED_ISA_CLONES __attribute__((flatten)) void forward_row_wide(const float* xr, int64_t d, const float* pw,
                                                               const float* pb, double eps, float* yr, float* mean,
                                                               float* rstd) {
  forward_row(xr, d, pw, pb, eps, yr, mean, rstd);
}
HEED_ISA_CLONES __attribute__((flatten)) void backward_row_wide(const float* gr, const float* xr, const float* pw,
                                                                float m, float s, int64_t d, float* xhat,
                                                                float* gxhat, double* pgw, double* pgb, float* out) {
  backward_row(gr, xr, pw, m, s, d, xhat, gxhat, pgw, pgb, out);
}
void forward_row_wide(const double* xr, int64_t d, const double* pw, const double* pb, double eps, double* yr,
                      double* mean, double* rstd) {
  forward_row(xr, d, pw, pb, eps, yr, mean, rstd);
}
void backward_row_wide(const double* gr, const double* xr, const double* pw, double m, double s, int64_t d,
                       double* xhat, double* gxhat, double* pgw, double* pgb, double* out) {
  backward_row(gr, xr, pw, m, s, d, xhat, gxhat, pgw, pgb, out);
}

template <class T>
void forward_rows(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& out, const Tensor& mean,
                  const Tensor& rstd) {
  const int64_t d = x.shape()[1], rows = x.shape()[0];
  const T* px = static_cast<const T*>(x.raw_data());       // [R, D]
  const T* pw = w.defined() ? static_cast<const T*>(w.raw_data()) : nullptr;  // [D]
  const T* pb = b.defined() ? static_cast<const T*>(b.raw_data()) : nullptr;  // [D]
  T* po = static_cast<T*>(out.raw_data());                 // [R, D]
  T* pm = static_cast<T*>(mean.raw_data());                // [R]
  T* pr = static_cast<T*>(rstd.raw_data());                // [R]
  parallel_for(0, rows, kRowBlock, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) forward_row_wide(px + r * d, d, pw, pb, eps, po + r * d, pm + r, pr + r);
  });
}

template <class T>
void backward_rows(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                   const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  const int64_t d = x.shape()[1], rows = x.shape()[0];
  const T* pg = static_cast<const T*>(g.raw_data());  // [R, D]
  const T* px = static_cast<const T*>(x.raw_data());  // [R, D]
  const T* pw = w.defined() ? static_cast<const T*>(w.raw_data()) : nullptr;  // [D]
  const T* pm = static_cast<const T*>(mean.raw_data());  // [R]
  const T* pr = static_cast<const T*>(rstd.raw_data());  // [R]
  T* pgx = gx.defined() ? static_cast<T*>(gx.raw_data()) : nullptr;  // [R, D]
  const bool want_gw = gw.defined(), want_gb = gb.defined();
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Per block: gw partial [D] then gb partial [D], in double.
  std::vector<double> partial((want_gw || want_gb) ? static_cast<size_t>(blocks * 2 * d) : 0, 0.0);
  parallel_for(0, blocks, 1, [&](int64_t blo, int64_t bhi) {
    std::vector<T> xhat(d), gxhat(d);
    for (int64_t blk = blo; blk < bhi; ++blk) {
      double* pgw = want_gw ? partial.data() + blk * 2 * d : nullptr;
      double* pgb = want_gb ? partial.data() + blk * 2 * d + d : nullptr;
      for (int64_t r = blk * kRowBlock; r < std::min(rows, (blk + 1) * kRowBlock); ++r)
        backward_row_wide(pg + r * d, px + r * d, pw, pm[r], pr[r], d, xhat.data(), gxhat.data(), pgw, pgb,
                          pgx ? pgx + r * d : nullptr);
    }
  });
  if (!want_gw && !want_gb) return;
  std::vector<double> total_w(d, 0.0), total_b(d, 0.0);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const double* p = partial.data() + blk * 2 * d;
    for (int64_t j = 0; j < d; ++j) {
      total_w[j] += p[j];
      total_b[j] += p[d + j];
    }
  }
  if (want_gw) {
    T* o = static_cast<T*>(gw.raw_data());
    for (int64_t j = 0; j < d; ++j) o[j] = static_cast<T>(total_w[j]);
  }
  if (want_gb) {
    T* o = static_cast<T*>(gb.raw_data());
    for (int64_t j = 0; j < d; ++j) o[j] = static_cast<T>(total_b[j]);
  }
}

}  // namespace

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                const Tensor& mean, const Tensor& rstd) {
  if (x.dtype() == DType::BFloat16) {  // mean and rstd are float32 already
    Tensor out32 = float32_like(out);
    layer_norm(widened(x), widened(weight), widened(bias), eps, out32, mean, rstd);
    return store_rounded(out32, out);
  }
  dispatch_floating(x.dtype(), "cpu layer_norm",
                    [&](auto zero) { forward_rows<decltype(zero)>(x, weight, bias, eps, out, mean, rstd); });
}

void layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias) {
  if (x.dtype() == DType::BFloat16) {
    Tensor gx = float32_like(grad_x), gw = float32_like(grad_weight), gb = float32_like(grad_bias);
    layer_norm_backward(widened(grad), widened(x), widened(weight), mean, rstd, gx, gw, gb);
    store_rounded(gx, grad_x);
    store_rounded(gw, grad_weight);
    return store_rounded(gb, grad_bias);
  }
  dispatch_floating(x.dtype(), "cpu layer_norm_backward", [&](auto zero) {
    backward_rows<decltype(zero)>(grad, x, weight, mean, rstd, grad_x, grad_weight, grad_bias);
  });
}

}  // namespace heed::cpu
