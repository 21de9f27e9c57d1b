#pragma once
// Checkpoints: a model's parameters and buffers, an optimizer's and a
// schedule's state, a generator's state and the training loop's own counters,
// configuration and texts, in one HDF5 file (docs/checkpoints.md gives the
// layout). Writing is atomic and every byte that is read back is checked.
//
//   heed::Checkpoint c = heed::capture(model, &opt, &schedule, &gen);
//   c.training["step"] = step;
//   c.config["d_model"] = "256";
//   heed::save_checkpoint("run/ckpt.h5", c);
//   ...
//   heed::restore(heed::load_checkpoint("run/ckpt.h5"), model, &opt, &schedule, &gen);
//
// Like io/hdf5.h this is not thread safe: save and load from one thread at a
// time (the serial HDF5 library is process-wide).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "optim/ema.h"
#include "optim/lr_schedule.h"
#include "nn/module.h"
#include "optim/optim.h"
#include "tensor/random.h"

namespace heed::io {

// The format this heed writes and the only one it reads.
inline constexpr int64_t kCheckpointFormatVersion = 1;

struct Checkpoint {
  nn::NamedTensors model;                           // parameters and buffers by dotted name (CPU copies)
  std::string optimizer_type;                       // Optimizer::type_name(), "" when none
  nn::NamedTensors optimizer_tensors;               // Optimizer::state()
  std::map<std::string, double> optimizer_scalars;  // Optimizer::scalars()
  std::string scheduler_type;                       // LRScheduler::type_name(), "" when none
  std::map<std::string, double> scheduler_state;    // LRScheduler::state()
  uint64_t rng_seed = 0, rng_offset = 0;            // a Generator's state
  std::map<std::string, int64_t> training;          // step, epoch, data position, ... (free-form)
  std::map<std::string, std::string> config;        // model and training configuration, values as text
  std::map<std::string, std::string> texts;         // larger text blobs, e.g. "src_vocab" -> serialized tokenizer
  std::vector<double> history;                      // optional: e.g. the losses so far (may be empty)
  nn::NamedTensors averages;                        // ExponentialMovingAverage::averages(), empty when none
  int64_t average_updates = 0;                      // ExponentialMovingAverage::updates()
};

// Writes atomically: to "<path>.tmp-<pid>" in the same folder, flush + fsync
// the file, rename over path, fsync the folder. A failure leaves any previous
// file at path untouched and removes the temporary; errors name the path.
// Names (tensors, keys) must be non-empty and free of '/'.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// Reads and validates everything; any problem is a heed::Error naming the file
// and listing what is wrong (not an HDF5 file, truncated, wrong or missing
// format version, missing group, bad dtype, checksum mismatch, ...).
Checkpoint load_checkpoint(const std::string& path);

// Fills a Checkpoint from live objects (opt, sched, gen, ema may be null):
// CPU copies of every tensor, so later training does not change it.
Checkpoint capture(const nn::Module& model, const optim::Optimizer* opt = nullptr,
                   const optim::LRScheduler* sched = nullptr, const Generator* gen = nullptr,
                   const optim::ExponentialMovingAverage* ema = nullptr);

// Puts a Checkpoint back. It validates against the live objects BEFORE
// changing anything: missing or unexpected names, shape or dtype mismatches,
// optimizer or scheduler type mismatches, an optimizer or scheduler asked for
// that the checkpoint does not have (an ema included) -> one heed::Error
// listing every problem, and nothing is modified. A null opt / sched / gen /
// ema is left out (a model alone can be restored from a training checkpoint).
void restore(const Checkpoint& ckpt, nn::Module& model, optim::Optimizer* opt = nullptr,
             optim::LRScheduler* sched = nullptr, Generator* gen = nullptr,
             optim::ExponentialMovingAverage* ema = nullptr);

// The model to evaluate: restore(ckpt, model), then, when the checkpoint has
// averaged parameters (a run with an ExponentialMovingAverage), those in
// place of the trained ones. Returns whether it used averages.
bool restore_for_evaluation(const Checkpoint& ckpt, nn::Module& model);

// 64-bit FNV-1a over `size` bytes, continuing from `hash` (the checksum the
// file stores for every dataset and for its whole content).
inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;
uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = kFnv1a64Offset);

}  // namespace heed::io
