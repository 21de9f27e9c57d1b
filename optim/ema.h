#pragma once
// An exponential moving average of a model's parameters (Polyak averaging
// with exponential weights; PyTorch users know it as
// torch.optim.swa_utils.AveragedModel with an EMA function, or timm's
// ModelEma). The averages trail the weights the optimizer produces and are
// often the better model to evaluate: they smooth out the noise of the last
// steps. After each optimizer step,
//
//   avg = d * avg + (1 - d) * param,   d = min(decay, (1 + n) / (10 + n)),
//
// n being the updates before this one. The averages start as a copy of the
// parameters, and the ramp (TensorFlow's ExponentialMovingAverage with
// num_updates: d = 0.1 at the first update, 0.5 at the ninth, 0.9 at the
// 81st) keeps the early averages from clinging to the initial weights.
//
//   heed::optim::ExponentialMovingAverage ema(model.named_parameters(), 0.999);
//   opt.step();
//   ema.update();
//   {
//     auto averaged = ema.swap_in();  // the model's parameters hold the averages
//     evaluate(model);
//   }                                 // and their own values again
//
// The averages live on the parameters' device in their dtype; update() runs
// under NoGradGuard. Checkpoints store them (heed::io::capture / restore take an
// ExponentialMovingAverage*).
#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"

namespace heed::optim {

class ExponentialMovingAverage {
 public:
  // decay in [0, 1); every tensor a defined float tensor, each given once.
  ExponentialMovingAverage(const nn::NamedTensors& params, double decay);
  ExponentialMovingAverage(const ExponentialMovingAverage&) = delete;
  ExponentialMovingAverage& operator=(const ExponentialMovingAverage&) = delete;

  // One averaging step from the parameters' current values.
  void update();

  double decay() const { return decay_; }
  // The decay the next update() uses.
  double next_decay() const;
  int64_t updates() const { return updates_; }
  // The averages by parameter name (handles: they change with update()).
  const nn::NamedTensors& averages() const { return averages_; }

  // While the returned object lives, the parameters hold the averages (the
  // same handles, values copied in); it puts their own values back when it
  // is destroyed. One swap at a time.
  class Swap {
   public:
    explicit Swap(ExponentialMovingAverage& ema);
    ~Swap();
    Swap(const Swap&) = delete;
    Swap& operator=(const Swap&) = delete;

   private:
    ExponentialMovingAverage& ema_;
    TensorList saved_;
  };
  [[nodiscard]] Swap swap_in() { return Swap(*this); }
  // Copies the averages into the parameters for good (the end of training).
  void copy_to_parameters();

  // Checks saved averages and changes nothing: appends one line per problem,
  // each starting "averages: " (a name missing, unexpected or given twice, a
  // shape or dtype that differs, as nn::compare_named_tensors; a negative
  // update count).
  void check_state(const nn::NamedTensors& averages, int64_t updates, std::vector<std::string>& problems) const;
  // Copies saved averages in. Throws heed::Error listing every problem
  // check_state finds; nothing is changed then.
  void load_state(const nn::NamedTensors& averages, int64_t updates);
  // Copies averages in that check_state has found fitting, without checking
  // them again.
  void load_checked_state(const nn::NamedTensors& averages, int64_t updates);

 private:
  nn::NamedTensors params_;
  nn::NamedTensors averages_;
  double decay_;
  int64_t updates_ = 0;
  bool swapped_ = false;
};

}  // namespace heed::optim
