#include "examples/common/optimization.h"

#include <optional>

#include <fmt/core.h>

#include "data/random.h"
#include "examples/common/ranks.h"
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
  if (world_size() > 1) {
    // Each rank's loss is already its share of the global batch's mean.
    dist::DataParallelOptions o;
    o.op = dist::ReduceOp::Sum;
    ddp_ = std::make_unique<dist::DistributedDataParallel>(model, o);
  }
}

namespace {
// Points the default generator at a stream of this rank's own for one step,
// and moves it on by one draw afterwards, the same on every rank.
class RankStream {
 public:
  RankStream() : seed_(default_generator().seed()), offset_(default_generator().offset()) {
    default_generator().set_state(data::hash_counter(seed_, offset_, static_cast<uint64_t>(rank())), 0);
  }
  ~RankStream() { default_generator().set_state(seed_, offset_ + 1); }
  RankStream(const RankStream&) = delete;
  RankStream& operator=(const RankStream&) = delete;

 private:
  uint64_t seed_, offset_;
};
}  // namespace

double Optimization::step(int64_t parts, const std::function<Tensor(int64_t)>& loss_of) {
  opt.zero_grad();
  double total = 0;
  {
    std::optional<RankStream> stream;
    if (ddp_) stream.emplace();
    bool reduced = false;
    for (int64_t i = 0; i < parts; ++i) {
      const Tensor loss = loss_of(i);
      if (!loss.defined()) continue;  // an empty micro-batch
      if (ddp_ && i + 1 < parts) {
        auto pause = ddp_->no_sync();
        loss.backward();
      } else {
        loss.backward();
        reduced = true;
      }
      total += loss.item<double>();
    }
    if (ddp_ && !reduced) ddp_->reduce_gradients();  // the last micro-batch was empty here
  }
  optim::clip_grad_norm(model_.parameters(), clip_);
  schedule.step();
  opt.step();
  if (ema) ema->update();
  return total;
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

void StepTimes::print(const std::string& tokens, const dist::DataParallelStats* reductions) const {
  if (steps_ == 0) return;
  say("training steps alone: {} steps, {} {} in {:.1f} s = {:.0f} {}/s; first-step loss {:.5f}\n", steps_, tokens_, tokens,
      seconds_, static_cast<double>(tokens_) / seconds_, tokens, first_loss_);
  if (!reductions || reductions->reductions == 0) return;
  const auto per_step = static_cast<double>(reductions->reductions);
  say("gradient all-reduce over {} ranks: {:.1f} buckets and {:.2f} MB per step; {:.1f} ms per step communicating "
      "(overlapped with backward or not); the step waited {:.1f} ms for them at the end of backward: {:.1f}% of the "
      "step time\n",
      world_size(), static_cast<double>(reductions->buckets_sent) / per_step,
      static_cast<double>(reductions->bytes_sent) / per_step / 1e6, 1e3 * reductions->communication_s / per_step,
      1e3 * reductions->wait_s / per_step, 100 * reductions->wait_s / seconds_);
}

}  // namespace heed::examples
