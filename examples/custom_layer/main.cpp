// Trains the worked custom layer (swiglu.h) on a toy problem: points in R^8
// are labelled by which of 4 fixed directions they lie closest to after a
// squaring, so no linear model can get them all. A SwiGLU block and a linear
// head learn it with AdamW, a warmup-cosine schedule and gradient clipping;
// the loss is printed as it falls.
#include <cstdio>

#include <heed.h>
#include "examples/custom_layer/swiglu.h"
#include "optim/clip_grad.h"
#include "nn/loss.h"
#include "optim/lr_schedule.h"
#include "optim/optim.h"

namespace {
struct Classifier : heed::nn::Module {
  std::shared_ptr<example::SwiGLUFeedForward> ffn;
  std::shared_ptr<heed::nn::Linear> head;
  Classifier(int64_t d, int64_t hidden, int64_t classes) : Module("Classifier") {
    ffn = register_module("ffn", std::make_shared<example::SwiGLUFeedForward>(example::SwiGLUFeedForwardOptions{d, hidden}));
    head = register_module("head", std::make_shared<heed::nn::Linear>(heed::nn::LinearOptions{d, classes}));
  }
  heed::Tensor forward(const heed::Tensor& x) const { return head->forward(x + ffn->forward(x)); }  // [N, classes]
};
}  // namespace

int main() {
  using namespace heed;
  manual_seed(0);
  const int64_t n = 512, d = 8, hidden = 32, classes = 4, steps = 300;

  // The data: labels from a fixed non-linear rule.
  Tensor x = randn({n, d});                                           // [N, D]
  Tensor directions = randn({d, classes});                            // [D, C]
  Tensor labels = argmax(matmul(square(x) - 1.0, directions), -1);  // [N] int64

  Classifier model(d, hidden, classes);
  optim::AdamW opt(model.named_parameters(), {/*lr=*/1e-2, 0.9, 0.999, 1e-8, /*weight_decay=*/1e-2});
  optim::WarmupCosineSchedule schedule(opt, {/*base_lr=*/1e-2, /*min_lr=*/1e-4, /*warmup_steps=*/20, steps});

  for (int64_t step = 1; step <= steps; ++step) {
    Tensor loss = nn::cross_entropy(model.forward(x), labels);
    opt.zero_grad();
    loss.backward();
    double norm = optim::clip_grad_norm(model.parameters(), 1.0);
    schedule.step();  // the lr of the step just below
    opt.step();
    if (step == 1 || step % 30 == 0)
      std::printf("step %3lld  loss %.4f  grad norm %.3f  lr %.2e\n", static_cast<long long>(step), loss.item<float>(),
                  norm, opt.lr());
  }

  NoGradGuard no_grad;
  Tensor predicted = argmax(model.forward(x), -1);
  double accuracy = mean(to_dtype(eq(predicted, labels), DType::Float32)).item<float>();
  std::printf("training accuracy %.1f%%\n", 100.0 * accuracy);
  return 0;
}
