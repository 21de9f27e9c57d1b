#include "examples/common/ranks.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <thread>

#include "dist/dist.h"
#include "tensor/backend.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"

namespace heed::examples {

namespace {
bool joined() { return dist::is_initialized(); }
}  // namespace

int rank() { return joined() ? dist::rank() : 0; }
int world_size() { return joined() ? dist::world_size() : 1; }
bool writes() { return rank() == 0; }

int run_ranks(const std::string& program, int64_t threads, const std::function<int()>& command) {
  dist::InitGuard world;
  const bool threads_chosen = threads > 0 || std::getenv("HEED_NUM_THREADS") != nullptr;
  if (!threads_chosen && dist::local_world_size() > 1) {
    // N ranks on one machine, each with a thread per core, would only fight
    // over the cores.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    cpu::set_num_threads(std::max(1, cores / dist::local_world_size()));
  }
  if (dist::world_size() > 1)
    say("{}: {} ranks ({} on this machine), {} CPU threads each\n", program, dist::world_size(),
        dist::local_world_size(), cpu::num_threads());
  if (dist::world_size() == 1) return command();
  try {
    return command();
  } catch (const std::exception& e) {
    // The others may be waiting for this rank in a collective: end them all.
    dist::abort(fmt::format("{}: error: {}", program, e.what()));
  }
}

std::vector<double> sum_over_ranks(std::vector<double> values) {
  if (world_size() == 1) return values;
  Tensor t = from_vector<double>(values, {static_cast<int64_t>(values.size())});
  dist::all_reduce(t, dist::ReduceOp::Sum);
  return t.to_vector<double>();
}

AgreedStep agree_on_step(double own_loss, double own_seconds, bool own_out_of_time) {
  const std::vector<double> sums = sum_over_ranks({own_loss, own_seconds, own_out_of_time ? 1.0 : 0.0});
  return {sums[0], sums[1] / static_cast<double>(world_size()), sums[2] > 0};
}

Device rank_device(Device device, bool index_given) {
  if (!device.is_cuda() || index_given || world_size() == 1) return device;
  const int gpus = device_count(DeviceType::CUDA);
  if (gpus <= 1) return device;
  return Device{DeviceType::CUDA, dist::local_rank() % gpus};
}

}  // namespace heed::examples
