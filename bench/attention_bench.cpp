// Forward + backward time and peak memory of one attention configuration,
// printed as one JSON object:
//
//   attention_bench --impl IMPL --T 1024 [--B 1] [--H 4] [--d 64] [--window 256]
//                   [--threads 2] [--min-time 1.0] [--max-reps 20]
//
// IMPL is one of
//   softmax, softmax_causal, softmax_window   the composed form (scores = q k^T * scale,
//       masked with -inf (causal: j > i; window: causal and j <= i - window), softmax, @ v),
//       what nn::scaled_dot_product_attention runs with AttentionImpl::Composed;
//   fused, fused_causal, fused_window   nn::scaled_dot_product_attention with
//       AttentionImpl::Fused (FlashAttention-2; the window is a pattern the kernel skips tiles by);
//   linear, linear_causal   nn::linear_attention.
// Every tensor is float32, q, k, v [B, H, T, d] require grad, and one step is
// out = attention(q, k, v); out.backward(g) with a fixed upstream gradient g.
//
// Peak memory is the process's resident high-water mark (VmHWM of
// /proc/self/status) minus its resident set just before the inputs were
// made, so it counts the inputs, every intermediate and every gradient, but
// not the program and its libraries. That is why each configuration runs in
// a process of its own (bench/run_attention.sh starts them). With
// HEED_PROFILE=1 the timed steps' per-kernel table goes to stderr.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>

#include "bench/bench_util.h"
#include "nn/attention.h"
#include "nn/linear_attention.h"
#include "tensor/cpu/cpu_profile.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"

namespace {

using heed::bench::Clock;
using heed::bench::seconds_since;
using heed::bench::status_bytes;

heed::Tensor softmax_attention(const heed::Tensor& q, const heed::Tensor& k, const heed::Tensor& v,
                               const heed::Tensor& causal_mask) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  heed::Tensor scores = heed::mul(heed::matmul(q, heed::transpose(k, -1, -2)), scale);  // [B, H, T, T]
  if (causal_mask.defined()) scores = heed::masked_fill(scores, causal_mask, -std::numeric_limits<double>::infinity());
  return heed::matmul(heed::softmax(scores, -1), v);
}

struct Args {
  std::string impl = "linear";
  int64_t B = 1, H = 4, T = 1024, d = 64, window = 256;
  int threads = 2;
  double min_time = 1.0;
  int max_reps = 20;
};

Args parse(int argc, char** argv) {
  Args a;
  heed::bench::parse_flags(argc, argv, [&](const std::string& key, const std::string& val) {
    if (key == "--impl") a.impl = val;
    else if (key == "--B") a.B = std::stoll(val);
    else if (key == "--H") a.H = std::stoll(val);
    else if (key == "--T") a.T = std::stoll(val);
    else if (key == "--d") a.d = std::stoll(val);
    else if (key == "--window") a.window = std::stoll(val);
    else if (key == "--threads") a.threads = std::stoi(val);
    else if (key == "--min-time") a.min_time = std::stod(val);
    else if (key == "--max-reps") a.max_reps = std::stoi(val);
    else return false;
    return true;
  });
  const char* impls[] = {"softmax", "softmax_causal", "softmax_window", "fused", "fused_causal",
                         "fused_window", "linear", "linear_causal"};
  if (std::find(std::begin(impls), std::end(impls), a.impl) == std::end(impls))
    throw std::runtime_error("--impl must be softmax[_causal|_window], fused[_causal|_window] or linear[_causal], got " +
                             a.impl);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    heed::cpu::set_num_threads(a.threads);
    const double rss0 = status_bytes("VmRSS:");

    heed::Generator gen(42);
    heed::Tensor q = heed::randn({a.B, a.H, a.T, a.d}, &gen).requires_grad_();
    heed::Tensor k = heed::randn({a.B, a.H, a.T, a.d}, &gen).requires_grad_();
    heed::Tensor v = heed::randn({a.B, a.H, a.T, a.d}, &gen).requires_grad_();
    heed::Tensor g = heed::randn({a.B, a.H, a.T, a.d}, &gen);
    heed::Tensor causal_mask;  // bool [T, T], true where key j may not be attended by query i
    if (a.impl == "softmax_causal") causal_mask = heed::nn::causal_mask(a.T);
    if (a.impl == "softmax_window") causal_mask = heed::nn::sliding_window_mask(a.T, a.T, a.window, true);
    heed::nn::AttentionOptions fused;
    fused.impl = heed::nn::AttentionImpl::Fused;
    fused.causal = a.impl == "fused_causal" || a.impl == "fused_window";
    if (a.impl == "fused_window") fused.window = a.window;

    auto step = [&] {
      for (heed::Tensor* t : {&q, &k, &v}) t->zero_grad();
      heed::Tensor out = a.impl == "linear"                ? heed::nn::linear_attention(q, k, v, false)
                         : a.impl == "linear_causal"       ? heed::nn::linear_attention(q, k, v, true)
                         : a.impl.compare(0, 5, "fused") == 0 ? heed::nn::scaled_dot_product_attention(q, k, v, fused).output
                                                           : softmax_attention(q, k, v, causal_mask);
      out.backward(g);
    };

    step();  // warm-up: first-touch page faults, thread start
    heed::cpu::profile_reset();
    double best = std::numeric_limits<double>::infinity(), total = 0;
    int reps = 0;
    while ((total < a.min_time || reps < 2) && reps < a.max_reps) {
      auto t0 = Clock::now();
      step();
      const double s = seconds_since(t0);
      best = std::min(best, s);
      total += s;
      ++reps;
    }
    const double peak = status_bytes("VmHWM:") - rss0;
    std::printf(
        "{\"impl\": \"%s\", \"B\": %lld, \"H\": %lld, \"T\": %lld, \"d\": %lld, \"window\": %lld, "
        "\"threads\": %d, \"reps\": %d, \"ms\": %.3f, \"peak_mib\": %.1f}\n",
        a.impl.c_str(), static_cast<long long>(a.B), static_cast<long long>(a.H), static_cast<long long>(a.T),
        static_cast<long long>(a.d), static_cast<long long>(a.window), a.threads, reps, best * 1e3,
        peak / (1024.0 * 1024.0));
    std::fflush(stdout);
    if (heed::cpu::profiling_enabled())
      std::fprintf(stderr, "heed kernel profile, %d steps of %s at T = %lld:\n%s", reps, a.impl.c_str(),
                   static_cast<long long>(a.T), heed::cpu::profile_report().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 1;
  }
}
