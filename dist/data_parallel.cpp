#include "dist/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "autograd/engine.h"
#include "dist/dist.h"
#include "tensor/error.h"
#include "tensor/grad_mode.h"

namespace heed::dist {

namespace {

// One line per parameter and buffer: what must be the same on every rank.
std::vector<std::string> describe_model(const nn::Module& module) {
  std::vector<std::string> lines;
  for (const auto& [name, p] : module.named_parameters())
    lines.push_back(fmt::format("parameter {} {} {}{}", name, shape_str(p.shape()), dtype_name(p.dtype()),
                                p.requires_grad() ? "" : " (no grad)"));
  for (const auto& [name, b] : module.named_buffers())
    lines.push_back(fmt::format("buffer {} {} {}", name, shape_str(b.shape()), dtype_name(b.dtype())));
  return lines;
}

int64_t fnv1a(const std::vector<std::string>& lines) {
  uint64_t h = 1469598103934665603ull;
  for (const std::string& line : lines) {
    for (unsigned char c : line + "\n") h = (h ^ c) * 1099511628211ull;
  }
  return static_cast<int64_t>(h >> 1);  // positive: the sum of one rank's hash and zeros stays exact
}

std::string join(const std::vector<std::string>& lines) {
  std::string all;
  for (const std::string& line : lines) all += line + "\n";
  return all;
}

// The first line where `mine` and `theirs` differ, as a sentence.
std::string first_difference(const std::vector<std::string>& mine, const std::vector<std::string>& theirs) {
  for (size_t i = 0; i < std::max(mine.size(), theirs.size()); ++i) {
    const std::string a = i < mine.size() ? mine[i] : "nothing", b = i < theirs.size() ? theirs[i] : "nothing";
    if (a != b) return fmt::format("entry {}: rank 0 has {}, this rank has {}", i, b, a);
  }
  return "no difference found";
}

// Every rank checks its model against rank 0's; every rank throws when any differs.
void check_same_model(ProcessGroup& group, const nn::Module& module) {
  const std::vector<std::string> mine = describe_model(module);
  Tensor hashes = zeros({group.size()}, DType::Int64);
  hashes.data_ptr<int64_t>()[group.rank()] = fnv1a(mine);
  group.all_reduce(hashes, ReduceOp::Sum);
  const std::vector<int64_t> all = hashes.to_vector<int64_t>();
  std::vector<int> differing;
  for (int r = 1; r < group.size(); ++r)
    if (all[r] != all[0]) differing.push_back(r);
  if (differing.empty()) return;
  // Rank 0's description, to every rank, so that each can say what differs.
  const std::string text = join(mine);
  Tensor length = from_vector<int64_t>({static_cast<int64_t>(text.size())}, {1});
  group.broadcast(length, 0);
  Tensor bytes = zeros({length.to_vector<int64_t>()[0]}, DType::UInt8);
  if (group.rank() == 0) std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  group.broadcast(bytes, 0);
  const std::vector<uint8_t> raw = bytes.to_vector<uint8_t>();
  std::vector<std::string> theirs;
  std::istringstream lines(std::string(raw.begin(), raw.end()));
  for (std::string line; std::getline(lines, line);) theirs.push_back(line);
  std::string ranks;
  for (int r : differing) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  const bool me = std::find(differing.begin(), differing.end(), group.rank()) != differing.end();
  HEED_FAIL("DistributedDataParallel: the model on rank{} {} differs from rank 0's (names, shapes and dtypes of "
            "the parameters and buffers must be the same on every rank){}",
            differing.size() > 1 ? "s" : "", ranks,
            me ? fmt::format("; on this rank (rank {}): {}", group.rank(), first_difference(mine, theirs))
               : "; see the error on that rank for the difference");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// The reduction's layout and the state of the backward in progress. The
// gradient hooks hold it weakly: once the DistributedDataParallel is gone,
// they do nothing.
struct DistributedDataParallel::State {
  struct Slot {
    std::string name;
    Tensor param;
    size_t bucket = 0;
    int64_t offset = 0;  // into the bucket's buffer
    size_t flag = 0;     // its entry among the bucket's flags: "this rank has a gradient"
  };
  struct Bucket {
    Tensor flat;  // the gradients, then one flag per slot
    std::vector<size_t> slots;
    int64_t flags_start = 0;    // where the flags begin in `flat`
    std::vector<double> flags;  // this rank's, written into `flat` at launch (one copy, not one per slot)
    size_t pending = 0;
    std::shared_ptr<Work> work;
  };

  ProcessGroup* group = nullptr;
  ReduceOp op = ReduceOp::Mean;
  bool sync = true;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  bool in_round = false;
  std::vector<char> ready;
  size_t next_launch = 0;
  DataParallelStats stats;

  void begin_round() {
    in_round = true;
    std::fill(ready.begin(), ready.end(), 0);
    next_launch = 0;
    for (Bucket& b : buckets) {
      // A round that ended in an error may have left a bucket in flight: it
      // must land before the bucket is written again.
      if (b.work && !b.work->is_completed()) {
        try {
          b.work->wait();
        } catch (const Error&) {
          // that round's error was reported to whoever ran it
        }
      }
      b.pending = b.slots.size();
      std::fill(b.flags.begin(), b.flags.end(), 0.0);
      b.work.reset();
    }
  }

  // Copies the slot's gradient (or zeros, and a flag saying there was none)
  // into its bucket.
  void fill(size_t index) {
    NoGradGuard no_grad;
    Slot& s = slots[index];
    Bucket& b = buckets[s.bucket];
    Tensor place = b.flat.narrow(0, s.offset, s.param.numel()).view(s.param.shape());
    const Tensor& g = s.param.grad();
    if (g.defined()) {
      place.copy_(g);
    } else {
      place.zero_();
    }
    b.flags[s.flag] = g.defined() ? 1.0 : 0.0;
    ready[index] = 1;
    --b.pending;
  }

  // Starts the all-reduce of every complete bucket whose predecessors have
  // started: the order is the buckets', the same on every rank, whatever
  // order the gradients arrived in.
  void launch_complete() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch++];
      {
        NoGradGuard no_grad;
        b.flat.narrow(0, b.flags_start, static_cast<int64_t>(b.flags.size()))
            .copy_(from_vector<double>(b.flags, {static_cast<int64_t>(b.flags.size())}).to(b.flat.dtype()));
      }
      b.work = group->all_reduce_async(b.flat, op);
      ++stats.buckets_sent;
      stats.bytes_sent += b.flat.numel() * static_cast<int64_t>(dtype_size(b.flat.dtype()));
    }
  }

  void on_gradient(size_t index, const std::weak_ptr<State>& self) {
    if (!sync) return;
    if (!in_round) {
      begin_round();
      queue_callback([self] {
        if (auto state = self.lock()) state->finish();
      });
    }
    HEED_CHECK(!ready[index],
               "DistributedDataParallel: parameter '{}' received its gradient twice in one reduction; run every "
               "backward of a step but the last under no_sync()",
               slots[index].name);
    fill(index);
    launch_complete();
  }

  // The end of a backward: what did not arrive is sent as it is, then the
  // results are written into .grad.
  void finish() {
    struct EndRound {
      bool& flag;
      ~EndRound() { flag = false; }
    } end{in_round};
    for (size_t i = 0; i < slots.size(); ++i)
      if (!ready[i]) fill(i);
    launch_complete();
    const auto start = std::chrono::steady_clock::now();
    for (Bucket& b : buckets) b.work->wait();
    stats.wait_s += seconds_since(start);
    for (const Bucket& b : buckets) stats.communication_s += b.work->seconds();
    ++stats.reductions;
    NoGradGuard no_grad;
    std::vector<std::vector<double>> reduced_flags;  // one read of each bucket's flags
    for (const Bucket& b : buckets)
      reduced_flags.push_back(
          b.flat.narrow(0, b.flags_start, static_cast<int64_t>(b.flags.size())).to_vector<double>());
    for (Slot& s : slots) {
      const Bucket& b = buckets[s.bucket];
      if (reduced_flags[s.bucket][s.flag] == 0) continue;  // no rank had a gradient
      Tensor result = b.flat.narrow(0, s.offset, s.param.numel()).view(s.param.shape());
      if (s.param.grad().defined()) {
        s.param.mutable_grad().copy_(result);
      } else {
        s.param.set_grad(result.clone());
      }
    }
  }
};

DistributedDataParallel::DistributedDataParallel(nn::Module& module, DataParallelOptions options, ProcessGroup* group)
    : module_(module), state_(std::make_shared<State>()) {
  HEED_CHECK(options.bucket_mb > 0, "DistributedDataParallel: bucket_mb must be > 0, got {}", options.bucket_mb);
  State& s = *state_;
  s.group = group ? group : &world();
  s.op = options.op;
  check_same_model(*s.group, module);
  {
    NoGradGuard no_grad;
    for (auto& [name, p] : module.named_parameters()) {
      Tensor values = p.detach();
      HEED_CHECK(values.is_contiguous(), "DistributedDataParallel: parameter '{}' is not contiguous", name);
      s.group->broadcast(values, 0);
    }
    for (auto& [name, b] : module.named_buffers()) {
      Tensor values = b.detach();
      HEED_CHECK(values.is_contiguous(), "DistributedDataParallel: buffer '{}' is not contiguous", name);
      s.group->broadcast(values, 0);
    }
  }

  // Buckets: the parameters in reverse, by device and dtype, cut at bucket_mb.
  const nn::NamedTensors params = module.named_parameters();
  const auto cap = static_cast<int64_t>(options.bucket_mb * 1024 * 1024);
  std::map<std::pair<std::string, int>, size_t> open;  // (device, dtype) -> its bucket being filled
  std::vector<int64_t> sizes;                            // elements of each bucket's gradients
  std::vector<std::pair<Device, DType>> kinds;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const auto& [name, p] = *it;
    if (!p.requires_grad()) continue;
    HEED_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64,
               "DistributedDataParallel: parameter '{}' is {}; gradients are reduced in float32 or float64 (keep "
               "parameters in float32 and train in bf16 under autocast)",
               name, dtype_name(p.dtype()));
    const std::pair<std::string, int> key{fmt::format("{}", p.device()), static_cast<int>(p.dtype())};
    const int64_t bytes = p.numel() * static_cast<int64_t>(dtype_size(p.dtype()));
    auto found = open.find(key);
    if (found == open.end() || (sizes[found->second] > 0 && (sizes[found->second] * static_cast<int64_t>(dtype_size(p.dtype())) + bytes) > cap)) {
      s.buckets.emplace_back();
      sizes.push_back(0);
      kinds.emplace_back(p.device(), p.dtype());
      open[key] = s.buckets.size() - 1;
      found = open.find(key);
    }
    State::Slot slot;
    slot.name = name;
    slot.param = p;
    slot.bucket = found->second;
    slot.offset = sizes[found->second];
    sizes[found->second] += p.numel();
    s.buckets[found->second].slots.push_back(s.slots.size());
    s.slots.push_back(slot);
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    State::Bucket& bucket = s.buckets[b];
    bucket.flags_start = sizes[b];
    bucket.flags.assign(bucket.slots.size(), 0.0);
    for (size_t k = 0; k < bucket.slots.size(); ++k) s.slots[bucket.slots[k]].flag = k;
    bucket.flat = zeros({sizes[b] + static_cast<int64_t>(bucket.slots.size())}, kinds[b].second, kinds[b].first);
  }
  s.ready.assign(s.slots.size(), 0);

  const std::weak_ptr<State> weak = state_;
  for (size_t i = 0; i < s.slots.size(); ++i)
    s.slots[i].param.register_post_accumulate_grad_hook([weak, i](const Tensor&) {
      if (auto state = weak.lock()) state->on_gradient(i, weak);
    });
}

DistributedDataParallel::~DistributedDataParallel() {
  // Buckets in flight hold their buffers; wait, so that no collective of
  // this object outlives it unpaired on the other ranks.
  for (State::Bucket& b : state_->buckets)
    if (b.work) {
      try {
        b.work->wait();
      } catch (const Error&) {
        // reported where the reduction was waited for, if it was
      }
    }
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel* owner) : owner_(owner), previous_(owner->state_->sync) {
  owner_->state_->sync = false;
}

DistributedDataParallel::NoSync::NoSync(NoSync&& other) noexcept : owner_(other.owner_), previous_(other.previous_) {
  other.owner_ = nullptr;
}

DistributedDataParallel::NoSync::~NoSync() {
  if (owner_) owner_->state_->sync = previous_;
}

DistributedDataParallel::NoSync DistributedDataParallel::no_sync() { return NoSync(this); }

void DistributedDataParallel::reduce_gradients() {
  HEED_CHECK(!state_->in_round, "DistributedDataParallel::reduce_gradients: a reduction is already in progress "
                                "(called from inside a backward?)");
  state_->begin_round();
  state_->finish();
}

int64_t DistributedDataParallel::num_buckets() const { return static_cast<int64_t>(state_->buckets.size()); }

const DataParallelStats& DistributedDataParallel::stats() const { return state_->stats; }

}  // namespace heed::dist
