#pragma once
// The optimizer side of lm's and translate's training runs: AdamW over the
// model's parameters (each program chooses its betas), the warmup-then-cosine
// schedule over the run's length (a number of steps, or fitted to a time
// budget: training_length.h), gradient clipping and, with --ema, a moving
// average of the weights; continued exactly from a checkpoint; and the
// throughput of the training steps alone.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "examples/common/run_config.h"
#include "examples/common/train_flags.h"
#include "examples/common/training_length.h"
#include "dist/data_parallel.h"
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
  // default generator's and average's state. In a run of several ranks
  // (collective: every rank constructs it), rank 0's weights go to every
  // rank and the gradients are summed over the ranks.
  Optimization(nn::Module& model, const optim::AdamWOptions& adamw, const TrainingSettings& settings,
               const io::Checkpoint* resumed);
  Optimization(const Optimization&) = delete;
  Optimization& operator=(const Optimization&) = delete;

  // One step: the gradients of this rank's `parts` micro-batches, where
  // loss_of(i) builds micro-batch i's loss (undefined when it is empty),
  // scaled so that every micro-batch's of every rank add up to the global
  // batch's loss; summed over the ranks (communicating after the last
  // micro-batch only), clipped to the settings' norm; the schedule's
  // learning rate, AdamW, then the average. Returns the sum of this rank's
  // losses. With several ranks, dropout draws from a stream of each rank's
  // own (seeded by the default generator, the rank and the step), so the
  // ranks' masks differ and the default generator stays the same everywhere.
  double step(int64_t parts, const std::function<Tensor(int64_t part)>& loss_of);
  // What a checkpoint holds of the run: the state restore reads, and
  // `config` with the run's length saved into it.
  io::Checkpoint capture(Config& config) const;
  // What the gradient reductions cost so far; null in a world of one.
  const dist::DataParallelStats* data_parallel_stats() const { return ddp_ ? &ddp_->stats() : nullptr; }

  optim::AdamW opt;
  TrainingLength length;
  optim::WarmupCosineSchedule schedule;
  std::unique_ptr<optim::ExponentialMovingAverage> ema;  // with --ema

 private:
  nn::Module& model_;
  double clip_;
  std::unique_ptr<dist::DistributedDataParallel> ddp_;  // with several ranks
};

// The training steps alone (batch, forward, backward, clipping, optimizer;
// no evaluations or checkpoints), for comparisons with other frameworks.
class StepTimes {
 public:
  void record(double seconds, int64_t tokens, double loss);
  // "training steps alone: 40 steps, 20150 target tokens in 0.7 s = 27643
  // target tokens/s; first-step loss 3.84078" on stderr, where `tokens` is
  // "target tokens"; nothing when no step ran. With `reductions` (several
  // ranks) a second line says what the gradients' all-reduces took.
  void print(const std::string& tokens, const dist::DataParallelStats* reductions = nullptr) const;

 private:
  double seconds_ = 0;
  int64_t tokens_ = 0, steps_ = 0;
  double first_loss_ = 0;
};

}  // namespace heed::examples
