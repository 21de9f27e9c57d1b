#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/engine.h"
#include "tensor/grad_mode.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"

namespace heed {

namespace {

// Address of element `flat` (row-major order) of a strided CPU float64 tensor.
double* element(const Tensor& t, int64_t flat) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    int64_t n = t.shape()[d];
    off += (flat % n) * t.strides()[d];
    flat /= n;
  }
  return static_cast<double*>(t.raw_data()) + off;
}

Tensor flat_output(const GradcheckFn& fn, const TensorList& inputs) {
  Tensor y = fn(inputs);
  HEED_CHECK(y.defined() && y.dtype() == DType::Float64,
             "gradcheck: the function must return a float64 tensor, got {}", y.defined() ? dtype_name(y.dtype()) : "undefined");
  return reshape(y, {-1});
}

bool fail(const GradcheckOptions& o, const std::string& message) {
  if (o.raise) throw Error(message);
  return false;
}

}  // namespace

bool gradcheck(const GradcheckFn& fn, const TensorList& inputs, const GradcheckOptions& o) {
  std::vector<size_t> checked;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    HEED_CHECK(inputs[i].dtype() == DType::Float64 && inputs[i].device().is_cpu(),
               "gradcheck: input {} must be float64 on the CPU, got {} on {}", i, inputs[i].dtype(), inputs[i].device());
    checked.push_back(i);
  }
  HEED_CHECK(!checked.empty(), "gradcheck: no input requires grad");

  Tensor y = flat_output(fn, inputs);
  int64_t m = y.numel();
  TensorList wrt;
  for (size_t i : checked) wrt.push_back(inputs[i]);

  // Analytic Jacobian, one row per output element.
  std::vector<std::vector<double>> analytic(checked.size());
  for (int64_t r = 0; r < m; ++r) {
    Tensor seed = zeros({m}, DType::Float64);
    seed.data_ptr<double>()[r] = 1.0;
    TensorList g = grad({y}, wrt, {seed}, /*retain_graph=*/true, /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t k = 0; k < checked.size(); ++k) {
      int64_t n = inputs[checked[k]].numel();
      std::vector<double> row = g[k].defined() ? contiguous(g[k]).to_vector<double>() : std::vector<double>(n, 0.0);
      analytic[k].insert(analytic[k].end(), row.begin(), row.end());
    }
  }

  // Numeric Jacobian, one column per input element. Expanded inputs share
  // memory between elements, so the numeric side perturbs a private copy.
  for (size_t k = 0; k < checked.size(); ++k) {
    const Tensor& x = inputs[checked[k]];
    int64_t n = x.numel();
    for (int64_t c = 0; c < n; ++c) {
      TensorList perturbed = inputs;
      Tensor xp = clone(x.detach());
      perturbed[checked[k]] = xp;
      double* p = element(xp, c);
      double orig = *p;
      // Read each result before the next perturbation: fn may return a view
      // of its input.
      std::vector<double> yp, ym;
      {
        NoGradGuard no_grad;
        *p = orig + o.eps;
        yp = flat_output(fn, perturbed).to_vector<double>();
        *p = orig - o.eps;
        ym = flat_output(fn, perturbed).to_vector<double>();
        *p = orig;
      }
      for (int64_t r = 0; r < m; ++r) {
        double numeric = (yp[r] - ym[r]) / (2 * o.eps);
        double a = analytic[k][r * n + c];
        if (!(std::abs(a - numeric) <= o.atol + o.rtol * std::abs(numeric))) {
          return fail(o, fmt::format("gradcheck: Jacobian mismatch for input {} (shape {}) at element {}, output "
                                     "element {}: backward gives {:.10g}, finite differences give {:.10g}",
                                     checked[k], shape_str(x.shape()), c, r, a, numeric));
        }
      }
    }
  }
  return true;
}

bool gradgradcheck(const GradcheckFn& fn, const TensorList& inputs, const GradcheckOptions& o) {
  TensorList wrt;
  std::vector<size_t> idx;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) {
      wrt.push_back(inputs[i]);
      idx.push_back(i);
    }
  HEED_CHECK(!wrt.empty(), "gradgradcheck: no input requires grad");
  Tensor y0;
  {
    NoGradGuard no_grad;
    y0 = fn(inputs);
  }
  Generator gen(1234);
  Tensor v = randn(y0.shape(), &gen, DType::Float64).requires_grad_();
  size_t count = inputs.size();
  auto vjp = [&, count](const TensorList& all) {
    // The numeric side calls this with plain copies under NoGradGuard; the
    // gradient still has to be built, from fresh leaves.
    EnableGradGuard enable;
    TensorList xs(all.begin(), all.begin() + count);
    TensorList wrt_now;
    for (size_t i : idx) {
      if (!xs[i].requires_grad()) xs[i] = xs[i].detach().requires_grad_();
      wrt_now.push_back(xs[i]);
    }
    Tensor y = fn(xs);
    TensorList g = grad({y}, wrt_now, {all[count]}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
    TensorList flat;
    for (size_t k = 0; k < g.size(); ++k)
      flat.push_back(g[k].defined() ? reshape(g[k], {-1}) : zeros({wrt_now[k].numel()}, DType::Float64));
    return cat(flat, 0);
  };
  TensorList all = inputs;
  all.push_back(v);
  return gradcheck(vjp, all, o);
}

}  // namespace heed
