// The CUDA op table's fused Adam step, lerp, counter-based random fill and
// fused dropout. They
// follow the CPU kernels operation by operation (cuda/optim_math.h), so a
// step or a seed gives the same numbers on either device: bit for bit for
// adam_step, lerp, uniform and bernoulli; normal up to the device's logf/cosf.
// bfloat16 is computed in float32 (float32 scalars and samples) and rounded
// once on store.
#include <cuda_runtime_api.h>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/optim_math.h"
#include "cuda/row_parts.h"
#include "tensor/error.h"

namespace heed::cuda {

namespace {

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamStepArgs& a) {
  HEED_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous(),
             "cuda adam_step: expected contiguous tensors, got param {}, grad {}, exp_avg {}, exp_avg_sq {}",
             describe(param), describe(grad), describe(exp_avg), describe(exp_avg_sq));
  DeviceGuard guard(param.device().index);
  HEED_CHECK(grad.dtype() == param.dtype() && exp_avg.dtype() == param.dtype() && exp_avg_sq.dtype() == param.dtype(),
             "cuda adam_step: param, grad, exp_avg and exp_avg_sq must share one dtype, got {}, {}, {}, {}",
             param.dtype(), grad.dtype(), exp_avg.dtype(), exp_avg_sq.dtype());
  dispatch_floating_or_bf16(param.dtype(), "cuda adam_step", [&](auto zero) {
    using T = decltype(zero);
    using C = compute_t<T>;
    const AdamScalars<C> s =
        make_adam_scalars<C>(a);
    launch_adam_step<T>(s, static_cast<T*>(param.raw_data()), static_cast<const T*>(grad.raw_data()),
                        static_cast<T*>(exp_avg.raw_data()), static_cast<T*>(exp_avg_sq.raw_data()), param.numel());
  });
}

void lerp(const Tensor& start, const Tensor& end, double weight, const Tensor& out) {
  HEED_CHECK(start.is_contiguous() && end.is_contiguous() && out.is_contiguous(),
             "cuda lerp: expected contiguous tensors, got start {}, end {}, out {}", describe(start), describe(end),
             describe(out));
  HEED_CHECK(start.shape() == out.shape() && end.shape() == out.shape() && start.dtype() == out.dtype() &&
                 end.dtype() == out.dtype(),
             "cuda lerp: start {}, end {} and out {} must agree in shape and dtype", describe(start), describe(end),
             describe(out));
  DeviceGuard guard(out.device().index);
  dispatch_floating_or_bf16(out.dtype(), "cuda lerp", [&](auto zero) {
    using T = decltype(zero);
    launch_lerp<T>(static_cast<const T*>(start.raw_data()), static_cast<const T*>(end.raw_data()),
                   static_cast<compute_t<T>>(weight), static_cast<T*>(out.raw_data()), out.numel());
  });
}

void random(RandomDist dist, double a, double b, uint64_t seed, uint64_t offset, const Tensor& out) {
  HEED_CHECK(out.is_contiguous(), "cuda random: out must be contiguous, got {}", describe(out));
  DeviceGuard guard(out.device().index);
  const int64_t n = out.numel();
  switch (dist) {
    case RandomDist::Uniform:
      return dispatch_floating_or_bf16(out.dtype(), "cuda random (uniform)", [&](auto zero) {
        using T = decltype(zero);
        using C = compute_t<T>;
        launch_random_uniform<T>(static_cast<T*>(out.raw_data()), n, seed, offset, static_cast<C>(a),
                                 static_cast<C>(b));
      });
    case RandomDist::Normal:
      return dispatch_floating_or_bf16(out.dtype(), "cuda random (normal)", [&](auto zero) {
        using T = decltype(zero);
        using C = compute_t<T>;
        launch_random_normal<T>(static_cast<T*>(out.raw_data()), n, seed, offset, static_cast<C>(a),
                                static_cast<C>(b));
      });
    case RandomDist::Bernoulli:
      return dispatch_dtype(out.dtype(), [&](auto zero) {
        using T = decltype(zero);
        launch_random_bernoulli<T>(static_cast<T*>(out.raw_data()), n, seed, offset, a);
      });
  }
  HEED_FAIL("cuda random: unknown distribution {}", static_cast<int>(dist));
}

void dropout(const Tensor& x, const Tensor& residual, double p, uint64_t seed, uint64_t offset, const Tensor& out) {
  HEED_CHECK(x.is_contiguous() && out.is_contiguous() && (!residual.defined() || residual.is_contiguous()),
             "cuda dropout: expected contiguous tensors, got x {}, out {}", describe(x), describe(out));
  DeviceGuard guard(out.device().index);
  dispatch_floating_or_bf16(out.dtype(), "cuda dropout", [&](auto zero) {
    using T = decltype(zero);
    launch_dropout<T>(static_cast<const T*>(x.raw_data()),
                      residual.defined() ? static_cast<const T*>(residual.raw_data()) : nullptr,
                      static_cast<T*>(out.raw_data()), out.numel(), seed, offset, p);
  });
}

}  // namespace

void install_optim_kernels(Backend& row) {
  row.adam_step = adam_step;
  row.lerp = lerp;
  row.random = random;
  row.dropout = dropout;
}

}  // namespace heed::cuda
