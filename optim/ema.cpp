#include "optim/ema.h"

#include <algorithm>

#include "optim/optim.h"
#include "tensor/error.h"
#include "tensor/grad_mode.h"

namespace heed::optim {

ExponentialMovingAverage::ExponentialMovingAverage(const nn::NamedTensors& params, double decay)
    : params_(params), decay_(decay) {
  HEED_CHECK(decay >= 0 && decay < 1, "ExponentialMovingAverage: decay must be in [0, 1), got {}", decay);
  check_parameter_list("ExponentialMovingAverage", params_);
  NoGradGuard no_grad;
  for (const auto& [name, p] : params_) averages_.emplace_back(name, clone(p.detach()));
}

double ExponentialMovingAverage::next_decay() const {
  const double n = static_cast<double>(updates_);
  return std::min(decay_, (1 + n) / (10 + n));
}

void ExponentialMovingAverage::update() {
  HEED_CHECK(!swapped_, "ExponentialMovingAverage::update: the parameters hold the averages (a Swap is alive)");
  NoGradGuard no_grad;
  const double d = next_decay();
  // avg + (1 - d) * (param - avg) in one pass (lerp): one rounding fewer
  // than d * avg + (1 - d) * param.
  for (size_t i = 0; i < params_.size(); ++i) averages_[i].second.lerp_(params_[i].second, 1 - d);
  ++updates_;
}

ExponentialMovingAverage::Swap::Swap(ExponentialMovingAverage& ema) : ema_(ema) {
  HEED_CHECK(!ema.swapped_, "ExponentialMovingAverage::swap_in: the averages are swapped in already");
  NoGradGuard no_grad;
  saved_.reserve(ema.params_.size());
  for (size_t i = 0; i < ema.params_.size(); ++i) {
    Tensor& p = ema.params_[i].second;
    saved_.push_back(clone(p.detach()));
    p.copy_(ema.averages_[i].second);
  }
  ema.swapped_ = true;
}

ExponentialMovingAverage::Swap::~Swap() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < saved_.size(); ++i) ema_.params_[i].second.copy_(saved_[i]);
  ema_.swapped_ = false;
}

void ExponentialMovingAverage::copy_to_parameters() {
  HEED_CHECK(!swapped_, "ExponentialMovingAverage::copy_to_parameters: a Swap is alive");
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].second.copy_(averages_[i].second);
}

void ExponentialMovingAverage::check_state(const nn::NamedTensors& averages, int64_t updates,
                                           std::vector<std::string>& problems) const {
  nn::compare_named_tensors("averages", averages_, averages, problems);
  if (updates < 0) problems.push_back(fmt::format("averages: the update count {} is negative", updates));
}

void ExponentialMovingAverage::load_state(const nn::NamedTensors& averages, int64_t updates) {
  std::vector<std::string> problems;
  check_state(averages, updates, problems);
  HEED_CHECK(problems.empty(), "ExponentialMovingAverage::load_state: the saved averages do not fit ({}):{}",
             nn::count_problems(problems), nn::list_problems(problems));
  load_checked_state(averages, updates);
}

void ExponentialMovingAverage::load_checked_state(const nn::NamedTensors& averages, int64_t updates) {
  nn::copy_named_tensors(averages_, averages);
  updates_ = updates;
}

}  // namespace heed::optim
