#pragma once
// What the training programs (lm, translate) share on their train command
// lines: the settings of the optimizer, the schedule, the run's length, the
// seed and the precision, which their checkpoints keep; the flags of the run
// itself (output folder, resuming, stops, cadence, threads, device, log); and
// the start of a run. Each program sets its own defaults and adds its model
// and data flags around these.
#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "examples/common/run_config.h"
#include "examples/common/training_length.h"
#include "io/checkpoint.h"
#include "tensor/device.h"

namespace heed::examples {

// The settings a checkpoint keeps and a resumed run reads back.
struct TrainingSettings {
  double lr = 1e-3, min_lr = 0, weight_decay = 0, clip = 1.0;
  // Evaluation, best.h5's selection and what the program makes of the
  // model at the end use an exponential moving average of the weights with
  // this decay (optim/ema.h); 0: the weights.
  double ema = 0;
  int64_t warmup = 200;
  // The run's length: fitted to a time budget of training (training_length.h),
  // or a fixed number of steps (--steps; 0 = fitted).
  int64_t steps = 0;
  double time_budget = 600;
  int64_t seed = 1;
  std::string precision = "fp32";  // fp32 | tf32 | bf16 (precision.h)

  // The keys "lr", "min_lr", "weight_decay", "clip", "ema", "warmup",
  // "steps", "time_budget", "seed" and "precision".
  void save(Config& config) const;
  // What save wrote. A checkpoint from before --ema, --time-budget or
  // --precision existed reads as no average, a fixed length and fp32.
  void load(const Config& config);
};

// The flags of a run that its checkpoints do not keep.
struct RunFlags {
  std::string out;               // folder of the checkpoints, the log and the loss plot
  std::string resume;            // a checkpoint to continue from
  std::string device = "cpu";    // cpu | cuda[:index]
  std::string log = "log.csv";   // the log's name in `out` (.csv or .jsonl)
  std::string export_data;       // HDF5 file of the run's data and batches, for another framework
  double time_limit = 0;         // seconds of wall time; 0 = none
  int64_t stop_at = 0;           // stop after this step (the schedule still spans the run); 0 = run to the end
  int64_t eval_every = 0, save_every = 0;
  int64_t threads = 0;           // 0: HEED_NUM_THREADS or all cores (shared among a machine's ranks)
  // Micro-batches each rank's part of a batch is split into, their gradients
  // added up before the step: the same step in less memory.
  int64_t accumulate = 1;
};

// The train command's common flags come in two groups, so that a program
// can place its own around them: TrainFlags, then add_run_flags.
class TrainFlags {
 public:
  // --lr, --min-lr, --weight-decay, --ema, --warmup, --steps / --time-budget,
  // --seed and --precision, with the settings' values as their defaults.
  // `averaged_use` says what else the averaged weights are for, for --ema's
  // help ("sample", "translate").
  TrainFlags(CLI::App& train, TrainingSettings& settings, const std::string& averaged_use);
  // After parsing: --steps or --time-budget (LengthFlags), and no
  // --export-data with --resume. Throws heed::Error naming the flags.
  void resolve(const RunFlags& run) const;

 private:
  std::optional<LengthFlags> length_;  // added after --warmup, hence optional
};

// --out, --resume, --time-limit, --stop-at, --eval-every, --save-every,
// --accumulate, --threads, --device and --log (each program words its own --export-data).
void add_run_flags(CLI::App& train, RunFlags& run);

// The start of a training run: applies --threads, checks --device (the
// device it returns: with several ranks and "cuda", a GPU per rank), creates
// --out and reads the --resume checkpoint into `resumed` ("resuming FILE at
// step N"), if one is given. Run within run_ranks (ranks.h).
Device start_run(const RunFlags& run, std::optional<io::Checkpoint>& resumed);

}  // namespace heed::examples
