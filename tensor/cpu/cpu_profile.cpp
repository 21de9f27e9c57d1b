// Timers around the CPU kernels (see cpu_profile.h). Each wrapper is a plain
// function with the slot's signature, so the row stays a table of function
// pointers and an unprofiled run pays nothing.
#include "tensor/cpu/cpu_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::cpu {

namespace {

struct Bucket {
  long long calls = 0;
  double seconds = 0;
};

bool enabled = false;

std::map<std::string, Bucket>& buckets() {
  static std::map<std::string, Bucket> b;
  return b;
}

// Times one kernel call into bucket `name`.
class Timed {
 public:
  explicit Timed(const char* name) : name_(name), start_(std::chrono::steady_clock::now()) {}
  explicit Timed(std::string name) : owned_(std::move(name)), name_(nullptr), start_(std::chrono::steady_clock::now()) {}
  ~Timed() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    Bucket& b = buckets()[name_ ? std::string(name_) : owned_];
    b.calls += 1;
    b.seconds += s;
  }

 private:
  std::string owned_;
  const char* name_;
  std::chrono::steady_clock::time_point start_;
};

void* p_allocate(size_t n, int d) { Timed t("allocate"); return allocate(n, d); }
void p_deallocate(void* p, size_t n, int d) { Timed t("deallocate"); deallocate(p, n, d); }
void p_copy(const Tensor& s, const Tensor& d) { Timed t("copy"); copy(s, d); }
void p_fill(const Tensor& d, double v) { Timed t("fill"); fill(d, v); }
void p_unary(UnaryOp op, const Tensor& x, double a, double b, const Tensor& out) {
  Timed t(std::string("unary.") + unary_op_name(op));
  unary(op, x, a, b, out);
}
void p_binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
  Timed t(std::string("binary.") + binary_op_name(op));
  binary(op, x, y, out);
}
void p_where(const Tensor& c, const Tensor& x, const Tensor& y, const Tensor& out) { Timed t("where"); where(c, x, y, out); }
void p_reduce(ReduceOp op, const Tensor& x, const Tensor& out) {
  Timed t(std::string("reduce.") + reduce_op_name(op));
  reduce(op, x, out);
}
bool with_shapes = false;  // HEED_PROFILE=2: matmul buckets per shape and layout

std::string matmul_name(const Tensor& a, const Tensor& b) {
  if (!with_shapes) return "matmul";
  // [batch] MxK(a's strides) * KxN(b's strides)
  return fmt::format("matmul {} {}x{}{} * {}{}", a.shape()[0], a.shape()[1], a.shape()[2], shape_str(a.strides()),
                     b.shape()[2], shape_str(b.strides()));
}

void p_matmul(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& addend) {
  Timed t(matmul_name(a, b));
  matmul(a, b, out, addend);
}
void p_softmax(const Tensor& x, bool log, const Tensor& out) {
  Timed t(log ? "log_softmax" : "softmax");
  softmax(x, log, out);
}
void p_softmax_backward(const Tensor& g, const Tensor& y, bool log, const Tensor& gx) {
  Timed t(log ? "log_softmax_backward" : "softmax_backward");
  softmax_backward(g, y, log, gx);
}
void p_cross_entropy(const Tensor& x, const Tensor& t, int64_t ignore, double e, const Tensor& loss, const Tensor& lse) {
  Timed timed("cross_entropy");
  cross_entropy(x, t, ignore, e, loss, lse);
}
void p_cross_entropy_backward(const Tensor& g, const Tensor& x, const Tensor& t, const Tensor& lse, int64_t ignore,
                              double e, const Tensor& gx) {
  Timed timed("cross_entropy_backward");
  cross_entropy_backward(g, x, t, lse, ignore, e, gx);
}
void p_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args,
                         const Tensor& out, const Tensor& lse) {
  Timed t("attention_forward");
  attention_forward(q, k, v, args, out, lse);
}
void p_attention_backward(const Tensor& g, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const AttentionArgs& args, const Tensor& gq, const Tensor& gk,
                          const Tensor& gv) {
  Timed t("attention_backward");
  attention_backward(g, q, k, v, out, lse, args, gq, gk, gv);
}
void p_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& out, const Tensor& mean,
                  const Tensor& rstd) {
  Timed t("layer_norm");
  layer_norm(x, w, b, eps, out, mean, rstd);
}
void p_layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  Timed t("layer_norm_backward");
  layer_norm_backward(g, x, w, mean, rstd, gx, gw, gb);
}
void p_index_select(const Tensor& x, int64_t dim, const Tensor& i, const Tensor& out) {
  Timed t("index_select");
  index_select(x, dim, i, out);
}
void p_gather(const Tensor& x, int64_t dim, const Tensor& i, const Tensor& out) { Timed t("gather"); gather(x, dim, i, out); }
void p_scatter_add(const Tensor& d, int64_t dim, const Tensor& i, const Tensor& s) {
  Timed t("scatter_add");
  scatter_add(d, dim, i, s);
}
void p_index_add(const Tensor& d, int64_t dim, const Tensor& i, const Tensor& s) {
  Timed t("index_add");
  index_add(d, dim, i, s);
}
void p_adam_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamStepArgs& args) {
  Timed t("adam_step");
  adam_step(p, g, m, v, args);
}
void p_lerp(const Tensor& start, const Tensor& end, double weight, const Tensor& out) {
  Timed t("lerp");
  lerp(start, end, weight, out);
}
void p_dropout(const Tensor& x, const Tensor& residual, double p, uint64_t seed, uint64_t off, const Tensor& out) {
  Timed t(residual.defined() ? "dropout_add" : "dropout");
  dropout(x, residual, p, seed, off, out);
}

void p_random(RandomDist dist, double a, double b, uint64_t seed, uint64_t off, const Tensor& out) {
  Timed t("random");
  random(dist, a, b, seed, off, out);
}

}  // namespace

bool profiling_enabled() { return enabled; }

void profile_reset() { buckets().clear(); }

std::string profile_report() {
  std::vector<std::pair<std::string, Bucket>> rows(buckets().begin(), buckets().end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  std::string out;
  char line[160];
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-22s %9lld calls %10.1f ms %5.1f%%\n", r.first.c_str(), r.second.calls,
                  1e3 * r.second.seconds, total > 0 ? 100 * r.second.seconds / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-22s %15s %10.1f ms\n", "kernels total", "", 1e3 * total);
  out += line;
  return out;
}

// Called by register_cpu_backend: swaps in the timed wrappers when asked to.
void maybe_profile(Backend& row) {
  const char* env = std::getenv("HEED_PROFILE");
  if (env == nullptr || (std::string(env) != "1" && std::string(env) != "2")) return;
  enabled = true;
  with_shapes = std::string(env) == "2";
  row.allocate = &p_allocate;
  row.deallocate = &p_deallocate;
  row.copy = &p_copy;
  row.fill = &p_fill;
  row.unary = &p_unary;
  row.binary = &p_binary;
  row.where = &p_where;
  row.reduce = &p_reduce;
  row.matmul = &p_matmul;
  row.softmax = &p_softmax;
  row.softmax_backward = &p_softmax_backward;
  row.cross_entropy = &p_cross_entropy;
  row.cross_entropy_backward = &p_cross_entropy_backward;
  row.attention_forward = &p_attention_forward;
  row.attention_backward = &p_attention_backward;
  row.layer_norm = &p_layer_norm;
  row.layer_norm_backward = &p_layer_norm_backward;
  row.index_select = &p_index_select;
  row.gather = &p_gather;
  row.scatter_add = &p_scatter_add;
  row.index_add = &p_index_add;
  row.adam_step = &p_adam_step;
  row.lerp = &p_lerp;
  row.random = &p_random;
  row.dropout = &p_dropout;
}

}  // namespace heed::cpu
