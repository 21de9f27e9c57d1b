// The smallest end-to-end training run: a two-layer tanh network learns
// y = sin(x) on [-3, 3] with plain gradient descent, printing its loss as it
// falls. Everything it uses is heed's public API: tensors, autograd, NoGradGuard.
#include <cstdio>

#include <heed.h>

int main() {
  using namespace heed;
  manual_seed(0);
  const int64_t n = 256, hidden = 32;
  Tensor x = reshape(arange(-3.0, 3.0, 6.0 / n, DType::Float32), {n, 1});
  Tensor y = sin(x);

  Tensor w1 = mul(randn({1, hidden}), 1.0).requires_grad_();
  Tensor b1 = zeros({hidden}).requires_grad_();
  Tensor w2 = mul(randn({hidden, 1}), 1.0 / std::sqrt(static_cast<double>(hidden))).requires_grad_();
  Tensor b2 = zeros({1}).requires_grad_();
  std::vector<Tensor> params{w1, b1, w2, b2};

  const double lr = 0.02;
  for (int step = 0; step <= 2000; ++step) {
    Tensor h = tanh(add(matmul(x, w1), b1));
    Tensor pred = add(matmul(h, w2), b2);
    Tensor loss = mean(square(sub(pred, y)));
    for (Tensor& p : params) p.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (Tensor& p : params) p.add_(p.grad(), -lr);
    }
    if (step % 200 == 0) std::printf("step %4d  loss %.6f\n", step, loss.item<float>());
  }
  return 0;
}
