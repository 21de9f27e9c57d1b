#include "examples/common/optimization.h"

#include <fmt/core.h>

#include "optim/clip_grad.h"
#include "tensor/random.h"

namespace heed::examples {

namespace {
TrainingLength length_of(const TrainingSettings& s, const io::Checkpoint* resumed) {
  return resumed ? TrainingLength::restore(Config(resumed->config), s.warmup)
                 : TrainingLength(s.steps, s.time_budget, s.warmup);
}
}  // namespace

Optimization::Optimization(nn::Module& model, const optim::AdamWOptions& adamw, const TrainingSettings& s,
                           const io::Checkpoint* resumed)
    : opt(model.named_parameters(), adamw),
      length(length_of(s, resumed)),
      schedule(opt, {s.lr, s.min_lr, s.warmup, length.schedule_steps(s.warmup)}),
      model_(model),
      clip_(s.clip) {
  if (s.ema > 0) ema = std::make_unique<optim::ExponentialMovingAverage>(model.named_parameters(), s.ema);
  if (resumed) io::restore(*resumed, model, &opt, &schedule, &default_generator(), ema.get());
}

void Optimization::step(const Tensor& loss) {
  opt.zero_grad();
  loss.backward();
  optim::clip_grad_norm(model_.parameters(), clip_);
  schedule.step();
  opt.step();
  if (ema) ema->update();
}

io::Checkpoint Optimization::capture(Config& config) const {
  io::Checkpoint c = io::capture(model_, &opt, &schedule, &default_generator(), ema.get());
  length.save(config);
  c.config = config.values();
  return c;
}

void StepTimes::record(double seconds, int64_t tokens, double loss) {
  if (steps_ == 0) first_loss_ = loss;
  seconds_ += seconds, tokens_ += tokens, ++steps_;
}

void StepTimes::print(const std::string& tokens) const {
  if (steps_ == 0) return;
  fmt::print(stderr, "training steps alone: {} steps, {} {} in {:.1f} s = {:.0f} {}/s; first-step loss {:.5f}\n", steps_,
             tokens_, tokens, seconds_, static_cast<double>(tokens_) / seconds_, tokens, first_loss_);
}

}  // namespace heed::examples
