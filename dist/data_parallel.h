#pragma once
// Data-parallel training, the way PyTorch's DistributedDataParallel does it:
// every rank holds the whole model, runs forward and backward on its own part
// of the batch, and the gradients are averaged over the ranks before the
// optimizer steps, so every rank takes the same step and the models stay the
// same (docs/distributed.md).
//
//   heed::dist::InitGuard world;
//   nn::GPT model(options);
//   dist::DistributedDataParallel ddp(model);   // rank 0's weights everywhere
//   optim::AdamW opt(model.named_parameters(), {});
//   for (...) {
//     opt.zero_grad();
//     nn::cross_entropy(model.forward(my_part.x), my_part.y).backward();
//     opt.step();                                 // .grad is the mean over the ranks
//   }
//
// Unlike PyTorch's, it does not wrap the module's forward (heed's modules have
// forwards of their own signatures): it attaches to the parameters. Their
// gradients are gathered into buckets of about `bucket_mb` MB, in the
// reverse order of the parameters (the order backward produces them), and
// each bucket's all-reduce starts the moment its last gradient is
// accumulated, on the process group's thread, while backward goes on with the
// layers below. The end of backward waits for the last buckets and writes the
// results into .grad.
#include <cstdint>
#include <memory>
#include <string>

#include "dist/process_group.h"
#include "nn/module.h"

namespace heed::dist {

struct DataParallelOptions {
  // Target bucket size: smaller starts communication earlier, larger sends
  // fewer messages. PyTorch's default is 25 MB, tuned for fast networks and
  // large models; heed's models are smaller.
  double bucket_mb = 4;
  // Mean (the default, as PyTorch) or Sum, for a loss each rank has already
  // scaled by its share of the global batch (docs/distributed.md: uneven parts).
  ReduceOp op = ReduceOp::Mean;
};

// What the reductions cost, summed since construction (for benchmarks).
struct DataParallelStats {
  int64_t reductions = 0;     // backward passes whose gradients were reduced
  int64_t buckets_sent = 0;   // all-reduces started
  int64_t bytes_sent = 0;     // bytes of those buckets
  double communication_s = 0;  // time the all-reduces took, overlapped with backward or not
  double wait_s = 0;           // of which the program waited for them at the end of backward
};

class DistributedDataParallel {
 public:
  // Collective: every rank constructs it, with the same model. Checks that
  // every rank's parameters have the same names, shapes and dtypes (an error
  // naming the ranks and the first difference otherwise), then copies rank
  // 0's parameters and buffers to every rank. Build it after moving the
  // model to its device and before training. Parameters that do not require
  // grad are left out of the reduction (they are still broadcast).
  explicit DistributedDataParallel(nn::Module& module, DataParallelOptions options = {},
                                   ProcessGroup* group = nullptr /*world()*/);
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  nn::Module& module() { return module_; }

  // While a NoSync lives, backward accumulates into .grad without
  // communicating; the next backward outside one reduces the sum. For
  // gradient accumulation over micro-batches: every micro-batch but the last
  // runs under no_sync().
  class NoSync {
   public:
    ~NoSync();
    NoSync(NoSync&& other) noexcept;
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;
    NoSync& operator=(NoSync&&) = delete;

   private:
    friend class DistributedDataParallel;
    explicit NoSync(DistributedDataParallel* owner);
    DistributedDataParallel* owner_;
    bool previous_;
  };
  NoSync no_sync();

  // Reduces the current gradients now, as the end of a backward would: for a
  // rank that runs no backward in a step (its part of the batch was empty)
  // while the others do. Every rank's reductions must pair up: one per step.
  void reduce_gradients();

  int64_t num_buckets() const;
  const DataParallelStats& stats() const;

  struct State;  // shared with the gradient hooks (dist/data_parallel.cpp)

 private:
  nn::Module& module_;
  std::shared_ptr<State> state_;
};

}  // namespace heed::dist
