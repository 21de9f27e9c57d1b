// The checks and staging every backend shares (dist/collective.h).
#include "dist/collective.h"

#include <string>

#include "tensor/error.h"
#include "tensor/grad_mode.h"
#include "tensor/tensor_impl.h"

namespace heed::dist::detail {

namespace {

// The header's fields, in order.
enum Field { kCall = 0, kRootOrOp = 1, kValid = 2, kDType = 3, kDims = 4, kFolded = 5, kFirstSize = 6 };

std::string describe(const int64_t* h) {
  const auto call = static_cast<Call>(h[kCall]);
  if (call == Call::Barrier) return "barrier()";
  std::string shape = "[";
  for (int64_t d = 0; d < h[kDims] && d < kMaxDims; ++d) shape += (d ? ", " : "") + std::to_string(h[kFirstSize + d]);
  if (h[kDims] > kMaxDims) shape += fmt::format(", ... ({} dims)", h[kDims]);
  shape += "]";
  const char* dtype = h[kDType] >= 0 ? dtype_name(static_cast<DType>(h[kDType])) : "?";
  const char* refused = h[kValid] ? "" : " (refused on that rank: see its error)";
  if (call == Call::Broadcast)
    return fmt::format("broadcast(root {}) of {} {}{}", h[kRootOrOp], dtype, shape, refused);
  if (call == Call::AllReduce)
    return fmt::format("all_reduce({}) of {} {}{}", reduce_op_name(static_cast<ReduceOp>(h[kRootOrOp])), dtype,
                       shape, refused);
  return fmt::format("an unknown call ({})", h[kCall]);
}

}  // namespace

Header make_header(Call call, const Tensor* t, int64_t root_or_op, bool valid) {
  Header h;
  h.fill(-1);
  h[kCall] = static_cast<int64_t>(call);
  h[kRootOrOp] = root_or_op;
  h[kValid] = valid ? 1 : 0;
  h[kFolded] = 0;
  if (t && t->defined()) {
    h[kDType] = static_cast<int64_t>(t->dtype());
    h[kDims] = t->dim();
    for (int64_t d = 0; d < t->dim(); ++d) {
      if (d < kMaxDims) {
        h[kFirstSize + d] = t->size(d);
      } else {
        h[kFolded] = h[kFolded] * 1000003 + t->size(d);  // dims past kMaxDims, in one number
      }
    }
  } else {
    h[kDims] = 0;
  }
  return h;
}

void check_headers_agree(const std::vector<int64_t>& all, int world, int my_rank, const char* call) {
  const int64_t* first = all.data();
  std::string differ;
  int differing = 0;
  for (int r = 1; r < world; ++r) {
    const int64_t* h = all.data() + static_cast<size_t>(r) * kHeaderLength;
    bool same = true;
    for (int i = 0; i < kHeaderLength; ++i) same = same && h[i] == first[i];
    if (same) continue;
    if (++differing <= 4) differ += fmt::format("; rank {} called {}", r, describe(h));
  }
  if (differing == 0) return;
  HEED_FAIL("dist::{} (on rank {} of {}): the ranks called different collectives or passed different tensors: "
            "rank 0 called {}{}{}. Every rank must call the same collectives in the same order, with tensors of "
            "the same shape and dtype",
            call, my_rank, world, describe(first), differ,
            differing > 4 ? fmt::format("; and {} more ranks differ", differing - 4) : std::string());
}

namespace {
std::string contiguity_problem(const Tensor& t, const char* call) {
  if (t.is_contiguous()) return "";
  return fmt::format("dist::{}: the tensor (shape {}, strides {}) is not contiguous; pass t.contiguous() and copy "
                     "the result back",
                     call, shape_str(t.shape()), shape_str(t.strides()));
}
}  // namespace

std::string broadcast_problem(const Tensor& t, int root, int world) {
  if (!t.defined()) return "dist::broadcast: the tensor is undefined";
  if (root < 0 || root >= world)
    return fmt::format("dist::broadcast: root {} is not a rank of a world of {} processes", root, world);
  return contiguity_problem(t, "broadcast");
}

std::string all_reduce_problem(const Tensor& t, ReduceOp op) {
  if (!t.defined()) return "dist::all_reduce: the tensor is undefined";
  const DType dt = t.dtype();
  if (dt != DType::Float32 && dt != DType::Float64 && dt != DType::Int64)
    return fmt::format("dist::all_reduce: dtype {} is not supported (float32, float64 or int64)", dtype_name(dt));
  if (op == ReduceOp::Mean && dt == DType::Int64)
    return "dist::all_reduce: the mean of int64 tensors would be rounded; use ReduceOp::Sum and divide";
  return contiguity_problem(t, "all_reduce");
}

void on_host(Tensor& t, const std::function<void(Tensor& host)>& f) {
  if (t.device().is_cpu()) {
    f(t);
    t.impl()->storage->bump_version();
    return;
  }
  // Staged through host memory: the MPI here need not be CUDA-aware.
  Tensor host = t.detach().to(kCPU).contiguous();
  f(host);
  NoGradGuard no_grad;
  Tensor target = t.detach();  // shares t's storage: the copy lands in t
  target.copy_(host);          // and bumps its version
}

}  // namespace heed::dist::detail
