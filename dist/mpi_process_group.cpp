// The MPI backend: the world is heed's own copy of MPI_COMM_WORLD, set to
// return errors (MPI_ERRORS_RETURN) instead of aborting, so that every failed
// MPI call becomes a heed::Error naming the rank and the call. Compiled only
// when heed is built with MPI (HEED_MPI); dist/no_mpi.cpp stands in otherwise.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "dist/backend.h"
#include "dist/collective.h"
#include "dist/dist.h"
#include "dist/work_queue.h"
#include "tensor/error.h"

namespace heed::dist {

bool built_with_mpi() { return true; }

namespace {

bool g_started_mpi = false;  // whether heed called MPI_Init (and so calls MPI_Finalize)

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<size_t>(length));
}

// Throws heed::Error naming the rank and the MPI call when `code` is an error.
void check_mpi(int code, const char* call, int rank, int size) {
  if (code == MPI_SUCCESS) return;
  HEED_FAIL("dist: {} failed on rank {} of {}: {}", call, rank, size, mpi_error_text(code));
}

MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
    default: HEED_FAIL("dist: no MPI datatype for {}", dtype_name(dt));
  }
}

// MPI counts are ints: a large buffer goes in pieces of at most this many elements.
constexpr int64_t kMaxCount = INT_MAX / 2;

class MpiProcessGroup : public ProcessGroup {
 public:
  MpiProcessGroup() {
    int code = MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    if (code != MPI_SUCCESS) HEED_FAIL("dist::init: MPI_Comm_dup failed: {}", mpi_error_text(code));
    code = MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    if (code != MPI_SUCCESS) HEED_FAIL("dist::init: MPI_Comm_set_errhandler failed: {}", mpi_error_text(code));
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    MPI_Comm local = MPI_COMM_NULL;  // the ranks that share this machine's memory
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    check(MPI_Comm_rank(local, &local_rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
    MPI_Comm_free(&local);
    queue_ = std::make_unique<detail::WorkQueue>(fmt::format("rank {} of {}", rank_, size_),
                                                 [this](const std::string& message) { abort(message, 1); });
  }
  ~MpiProcessGroup() override {
    queue_.reset();  // the last collectives finish before the communicator goes
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override { return "mpi"; }

  // The header exchange is an all-gather, which no rank leaves before every
  // rank has entered it: it is the barrier, and checks that it is one.
  void barrier() override { queue_->run("barrier", [this] { barrier_now(); }); }
  void broadcast(Tensor& t, int root) override {
    queue_->run(fmt::format("broadcast from rank {}", root), [&] { broadcast_now(t, root); });
  }
  void all_reduce(Tensor& t, ReduceOp op) override {
    queue_->run(fmt::format("all_reduce({})", reduce_op_name(op)), [&] { all_reduce_now(t, op); });
  }
  std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    // The job holds the tensor (its storage) until it has run.
    return queue_->submit(fmt::format("all_reduce({}) of {} {}", reduce_op_name(op), t.defined() ? dtype_name(t.dtype()) : "?",
                                      t.defined() ? shape_str(t.shape()) : "[]"),
                          [this, target = Tensor(t), op]() mutable { all_reduce_now(target, op); });
  }

  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "heed dist: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; should it, the process still ends
  }

 private:
  // The collectives themselves, run on the queue's thread.
  // The header exchange is an all-gather, which no rank leaves before every
  // rank has entered it: it is the barrier, and checks that it is one.
  void barrier_now() { agree(detail::make_header(detail::Call::Barrier, nullptr, 0, true), "", "barrier"); }

  void broadcast_now(Tensor& t, int root) {
    const std::string problem = detail::broadcast_problem(t, root, size_);
    agree(detail::make_header(detail::Call::Broadcast, &t, root, problem.empty()), problem, "broadcast");
    if (t.numel() == 0) return;
    detail::on_host(t, [&](Tensor& host) {
      auto* bytes = static_cast<char*>(host.raw_data());
      const int64_t total = host.numel() * static_cast<int64_t>(dtype_size(host.dtype()));
      for (int64_t done = 0; done < total; done += kMaxCount) {
        const int count = static_cast<int>(std::min(kMaxCount, total - done));
        check(MPI_Bcast(bytes + done, count, MPI_BYTE, root, comm_), "MPI_Bcast");
      }
    });
  }

  void all_reduce_now(Tensor& t, ReduceOp op) {
    const std::string problem = detail::all_reduce_problem(t, op);
    agree(detail::make_header(detail::Call::AllReduce, &t, static_cast<int64_t>(op), problem.empty()), problem,
          "all_reduce");
    if (t.numel() == 0) return;
    detail::on_host(t, [&](Tensor& host) {
      auto* data = static_cast<char*>(host.raw_data());
      const size_t element = dtype_size(host.dtype());
      const MPI_Datatype type = mpi_type(host.dtype());
      for (int64_t done = 0; done < host.numel(); done += kMaxCount) {
        const int count = static_cast<int>(std::min(kMaxCount, host.numel() - done));
        check(MPI_Allreduce(MPI_IN_PLACE, data + done * element, count, type, MPI_SUM, comm_), "MPI_Allreduce");
      }
      if (op == ReduceOp::Mean) divide(host, size_);
    });
  }

  void check(int code, const char* call) const { check_mpi(code, call, rank_, size_); }

  // Every rank's header to every rank. Then throws this rank's own `problem`
  // when it has one, else an error naming every rank's call when they differ:
  // either way every rank throws, and none waits for a rank that gave up.
  void agree(const detail::Header& mine, const std::string& problem, const char* call) {
    std::vector<int64_t> all(static_cast<size_t>(size_) * detail::kHeaderLength);
    check(MPI_Allgather(mine.data(), detail::kHeaderLength, MPI_INT64_T, all.data(), detail::kHeaderLength,
                        MPI_INT64_T, comm_),
          "MPI_Allgather (the check that every rank calls the same collective)");
    if (!problem.empty()) throw Error(problem);
    detail::check_headers_agree(all, size_, rank_, call);
  }

  static void divide(Tensor& host, int by) {
    if (host.dtype() == DType::Float32) {
      float* p = host.data_ptr<float>();
      for (int64_t i = 0; i < host.numel(); ++i) p[i] /= static_cast<float>(by);
    } else {
      double* p = host.data_ptr<double>();
      for (int64_t i = 0; i < host.numel(); ++i) p[i] /= static_cast<double>(by);
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0, local_size_ = 1;
  std::unique_ptr<detail::WorkQueue> queue_;
};

}  // namespace

namespace detail {

std::unique_ptr<ProcessGroup> start_world() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  // heed calls MPI from one thread at a time, but not always the same one:
  // the program's thread starts and stops the world, the queue's thread
  // (dist/work_queue.h) runs the collectives in between.
  int provided = 0;
  if (!initialized) {
    const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (code != MPI_SUCCESS) HEED_FAIL("dist::init: MPI_Init_thread failed: {}", mpi_error_text(code));
    g_started_mpi = true;
  } else {
    MPI_Query_thread(&provided);
  }
  HEED_CHECK(provided >= MPI_THREAD_SERIALIZED,
             "dist::init: MPI provides thread level {} but heed needs MPI_THREAD_SERIALIZED ({}): it runs the "
             "collectives on a thread of their own{}",
             provided, MPI_THREAD_SERIALIZED,
             g_started_mpi ? "" : "; initialise MPI with MPI_Init_thread(..., MPI_THREAD_SERIALIZED, ...)");
  return std::make_unique<MpiProcessGroup>();
}

void stop_world() {
  if (!g_started_mpi) return;
  g_started_mpi = false;
  const int code = MPI_Finalize();
  if (code != MPI_SUCCESS) HEED_FAIL("dist::finalize: MPI_Finalize failed: {}", mpi_error_text(code));
}

}  // namespace detail

}  // namespace heed::dist
