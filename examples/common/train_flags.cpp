#include "examples/common/train_flags.h"

#include <filesystem>

#include <fmt/core.h>

#include "examples/common/device.h"
#include "examples/common/program.h"
#include "examples/common/ranks.h"
#include "tensor/cpu/parallel.h"
#include "tensor/error.h"

namespace heed::examples {

void TrainingSettings::save(Config& config) const {
  config.set("lr", lr), config.set("min_lr", min_lr), config.set("weight_decay", weight_decay);
  config.set("clip", clip), config.set("ema", ema), config.set("warmup", warmup);
  config.set("steps", steps), config.set("time_budget", time_budget);
  config.set("seed", seed), config.set("precision", precision);
}

void TrainingSettings::load(const Config& config) {
  lr = config.real("lr"), min_lr = config.real("min_lr"), weight_decay = config.real("weight_decay");
  clip = config.real("clip"), warmup = config.integer("warmup"), steps = config.integer("steps");
  seed = config.integer("seed");
  ema = config.real_or("ema", 0.0);
  time_budget = config.real_or("time_budget", 0.0);
  precision = config.str_or("precision", "fp32");
}

TrainFlags::TrainFlags(CLI::App& train, TrainingSettings& s, const std::string& averaged_use) {
  train.add_option("--lr", s.lr, "peak learning rate (linear warmup, cosine decay)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train.add_option("--min-lr", s.min_lr)->check(CLI::NonNegativeNumber)->capture_default_str();
  train.add_option("--weight-decay", s.weight_decay, "AdamW's decoupled weight decay")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  train.add_option("--ema", s.ema,
                   fmt::format("evaluate, pick best.h5 and {} with an exponential moving average of the weights of "
                               "this decay (e.g. 0.999; 0 = the weights themselves)",
                               averaged_use))
      ->check(CLI::Range(0.0, 0.99999))
      ->capture_default_str();
  train.add_option("--warmup", s.warmup, "warmup steps")->check(CLI::NonNegativeNumber)->capture_default_str();
  length_.emplace(train, s.steps, s.time_budget);
  train.add_option("--seed", s.seed)->capture_default_str();
  train.add_option("--precision", s.precision,
                   "fp32, tf32 (GPU: TF32 tensor-core matmuls), bf16-matmul (CPU: float32 matmuls with bf16 "
                   "inputs, on AVX512-BF16) or bf16 (mixed precision: bf16 matmuls, float32 softmax, norms, losses "
                   "and master weights); kept in the checkpoint")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16-matmul", "bf16"}))
      ->capture_default_str();
}

void add_run_flags(CLI::App& train, RunFlags& r) {
  train.add_option("--out", r.out, "folder for checkpoints, the log and the loss plot")->capture_default_str();
  train.add_option("--resume", r.resume, "continue from this checkpoint (its configuration wins)")
      ->check(CLI::ExistingFile);
  train.add_option("--time-limit", r.time_limit, "stop training after this many seconds (0 = none)")
      ->check(CLI::NonNegativeNumber);
  train.add_option("--stop-at", r.stop_at, "stop after this step; --resume continues the same schedule")
      ->check(CLI::NonNegativeNumber);
  train.add_option("--eval-every", r.eval_every)->check(CLI::PositiveNumber)->capture_default_str();
  train.add_option("--save-every", r.save_every)->check(CLI::PositiveNumber)->capture_default_str();
  train.add_option("--accumulate", r.accumulate,
                   "split each batch (each rank's part of it) into this many micro-batches, their gradients added "
                   "up: the same training in less memory")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_threads_flag(train, r.threads);
  add_device_flag(train, r.device);
  train.add_option("--log", r.log, "log file in --out (.csv or .jsonl)")->capture_default_str();
}

void TrainFlags::resolve(const RunFlags& r) const {
  length_->resolve();
  HEED_CHECK(r.export_data.empty() || r.resume.empty(),
             "--export-data exports a run from its start; it cannot be combined with --resume");
}

Device start_run(const RunFlags& r, std::optional<io::Checkpoint>& resumed) {
  if (r.threads > 0) cpu::set_num_threads(static_cast<int>(r.threads));
  const Device device = rank_device(device_from_flag(r.device), r.device.find(':') != std::string::npos);
  HEED_CHECK(r.export_data.empty() || world_size() == 1,
             "--export-data: run it in one process (it exports the data of one process's run), not under mpirun "
             "with {} ranks", world_size());
  if (writes()) std::filesystem::create_directories(r.out);
  if (!r.resume.empty()) {
    resumed = io::load_checkpoint(r.resume);  // by every rank: on several machines, from a shared folder
    say("resuming {} at step {}\n", r.resume, resumed->training.at("step"));
    // Every rank builds the same global batches whatever their number, so a
    // run continues with another number of ranks (docs/distributed.md).
    const auto saved_world = resumed->training.find("world_size");
    const int64_t was = saved_world == resumed->training.end() ? 1 : saved_world->second;
    if (was != world_size())
      say("resuming a run of {} rank{} with {}: the same global batches and schedule; the gradients are summed in "
          "another order and dropout draws other masks\n",
          was, was == 1 ? "" : "s", world_size());
  }
  return device;
}

}  // namespace heed::examples
