#pragma once
// The optimizer side of lm's and translate's training runs: AdamW over the
// model's parameters (each program chooses its betas), the warmup-then-cosine
// schedule over the run's length (a number of steps, or fitted to a time
// budget: training_length.h), gradient clipping and, with --ema, a moving
// average of the weights; continued exactly from a checkpoint; and the
// throughput of the training steps alone.
#include <cstdint>
#include <memory>
#include <string>

#include "examples/common/run_config.h"
#include "examples/common/train_flags.h"
#include "examples/common/training_length.h"
#include "io/checkpoint.h"
#include "nn/module.h"
#include "optim/ema.h"
#include "optim/lr_schedule.h"
#include "optim/optim.h"

namespace heed::examples {

class Optimization {
 public:
  // A new run with the settings' length, or, with `resumed`, the run that
  // checkpoint holds: its length, and the model's, optimizer's, schedule's,
  // default generator's and average's state.
  Optimization(nn::Module& model, const optim::AdamWOptions& adamw, const TrainingSettings& settings,
               const io::Checkpoint* resumed);
  Optimization(const Optimization&) = delete;
  Optimization& operator=(const Optimization&) = delete;

  // One step on `loss`: its gradients, clipped to the settings' norm, the
  // schedule's learning rate, AdamW, then the average.
  void step(const Tensor& loss);
  // What a checkpoint holds of the run: the state restore reads, and
  // `config` with the run's length saved into it.
  io::Checkpoint capture(Config& config) const;

  optim::AdamW opt;
  TrainingLength length;
  optim::WarmupCosineSchedule schedule;
  std::unique_ptr<optim::ExponentialMovingAverage> ema;  // with --ema

 private:
  nn::Module& model_;
  double clip_;
};

// The training steps alone (batch, forward, backward, clipping, optimizer;
// no evaluations or checkpoints), for comparisons with other frameworks.
class StepTimes {
 public:
  void record(double seconds, int64_t tokens, double loss);
  // "training steps alone: 40 steps, 20150 target tokens in 0.7 s = 27643
  // target tokens/s; first-step loss 3.84078" on stderr, where `tokens` is
  // "target tokens"; nothing when no step ran.
  void print(const std::string& tokens) const;

 private:
  double seconds_ = 0;
  int64_t tokens_ = 0, steps_ = 0;
  double first_loss_ = 0;
};

}  // namespace heed::examples
