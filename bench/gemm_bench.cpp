// GEMM throughput of heed::cpu::gemm (square float matrices, row-major) and the
// machine's measured FP32 FMA peak, one JSON object per line.
//
//   gemm_bench [--threads N] [--sizes 256,512,1024,2048] [--kernel avx512|avx2|portable]
//              [--min-time SECONDS] [--shapes MxNxK:LAYOUT,...] [--bf16]
//
// --shapes times C[M, N] = A[M, K] B[K, N] at given shapes instead of square
// ones; LAYOUT says how A and B lie in memory, as a layer's matmuls have them:
// nn (both row-major: a gradient times a weight), nt (B transposed: x W^T,
// a Linear's forward) or tn (A transposed: dY^T X, a weight's gradient).
//
// The peak is measured, not taken from a spec sheet: each thread runs a loop of
// independent FMAs (enough accumulators to hide the FMA latency), all threads at
// once, for both the 256-bit (AVX2) and the 512-bit (AVX-512) forms, because
// some cores split 512-bit FMAs in two and only the measurement tells.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench/bench_util.h"
#include "tensor/cpu/gemm.h"
#include "tensor/cpu/matmul.h"
#include "tensor/cpu/parallel.h"

namespace {

using heed::bench::Clock;
using heed::bench::seconds_since;

#if defined(__x86_64__)
// 24 independent zmm chains (of 32 registers): 2 FMA pipes x 4+ cycles latency
// need at least 8-10 in flight.
__attribute__((target("avx512f,fma"))) float fma_loop_avx512(int64_t iters) {
  constexpr int kChains = 24;
  __m512 acc[kChains];
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, sum);
  return lanes[0];
}

// 12 ymm chains: with the two constants that is 14 of 16 registers, no spills.
__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iters) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  return lanes[0];
}
#endif

// FLOP/s of `threads` threads each running loop(iters) at the same time. Best
// of many short runs: on a shared machine one of them will find the cores free.
double measure_peak(float (*loop)(int64_t), double flops_per_iter, int threads) {
  const int64_t iters = 5'000'000;
  double best = 0;
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<std::thread> pool;
    std::vector<float> sink(threads);
    auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = loop(iters); });
    for (auto& th : pool) th.join();
    double s = seconds_since(t0);
    best = std::max(best, flops_per_iter * iters * threads / s);
    if (sink[0] == 12345.0f) std::puts("");  // keep the result alive
  }
  return best;
}

// The best FP32 FMA throughput seen so far, per instruction set, on `threads`
// threads at once and on one.
struct Peaks {
  double avx2 = 0, avx2_one = 0, avx512 = 0, avx512_one = 0;

  void measure(int threads) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      avx2_one = std::max(avx2_one, measure_peak(fma_loop_avx2, 12 * 8 * 2, 1));
      avx2 = std::max(avx2, measure_peak(fma_loop_avx2, 12 * 8 * 2, threads));
    }
    if (__builtin_cpu_supports("avx512f")) {
      avx512_one = std::max(avx512_one, measure_peak(fma_loop_avx512, 24 * 16 * 2, 1));
      avx512 = std::max(avx512, measure_peak(fma_loop_avx512, 24 * 16 * 2, threads));
    }
#endif
  }

  void print(int threads) const {
    if (avx2 > 0)
      std::printf("{\"peak\": \"avx2\", \"threads\": %d, \"gflops\": %.1f, \"gflops_1thread\": %.1f}\n",
                  threads, avx2 / 1e9, avx2_one / 1e9);
    if (avx512 > 0)
      std::printf("{\"peak\": \"avx512\", \"threads\": %d, \"gflops\": %.1f, \"gflops_1thread\": %.1f}\n",
                  threads, avx512 / 1e9, avx512_one / 1e9);
  }
};

std::vector<int64_t> parse_sizes(const char* text) {
  std::vector<int64_t> sizes;
  for (const char* p = text; *p;) {
    char* end = nullptr;
    long long v = std::strtoll(p, &end, 10);
    if (end == p || v <= 0) {
      std::fprintf(stderr, "gemm_bench: bad --sizes '%s'\n", text);
      std::exit(2);
    }
    sizes.push_back(v);
    p = *end == ',' ? end + 1 : end;
  }
  return sizes;
}

struct Shape {
  int64_t m, n, k;
  std::string layout;  // nn, nt or tn
};

std::vector<Shape> parse_shapes(const char* text) {
  std::vector<Shape> shapes;
  std::string all(text);
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find(',', start);
    if (end == std::string::npos) end = all.size();
    const std::string item = all.substr(start, end - start);
    long long m = 0, n = 0, k = 0;
    char layout[3] = {0, 0, 0};
    if (std::sscanf(item.c_str(), "%lldx%lldx%lld:%2s", &m, &n, &k, layout) != 4 || m <= 0 || n <= 0 || k <= 0 ||
        (std::strcmp(layout, "nn") != 0 && std::strcmp(layout, "nt") != 0 && std::strcmp(layout, "tn") != 0)) {
      std::fprintf(stderr, "gemm_bench: bad --shapes item '%s' (want MxNxK:nn|nt|tn)\n", item.c_str());
      std::exit(2);
    }
    shapes.push_back({m, n, k, layout});
    start = end + 1;
  }
  return shapes;
}

// Best GFLOP/s of C = A B at one shape and layout over repeated runs lasting about min_time.
double bench_shape(const Shape& s, double min_time) {
  const int64_t M = s.m, N = s.n, K = s.k;
  std::vector<float> a(M * K), b(K * N), c(M * N);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& x : a) x = dist(rng);
  for (auto& x : b) x = dist(rng);
  // Row and column strides: A stored [M, K] or, transposed, [K, M]; B [K, N] or [N, K].
  const bool ta = s.layout == "tn", tb = s.layout == "nt";
  const int64_t rsa = ta ? 1 : K, csa = ta ? M : 1, rsb = tb ? 1 : N, csb = tb ? K : 1;
  auto run = [&] {
    heed::cpu::gemm(M, N, K, 1.0f, a.data(), rsa, csa, b.data(), rsb, csb, 0.0f, c.data(), N, 1);
  };
  run();  // warm-up: page faults, packing buffers, worker threads
  double best = 1e30, total = 0;
  int reps = 0;
  while ((total < min_time || reps < 5) && reps < 1000) {
    auto t0 = Clock::now();
    run();
    double s = seconds_since(t0);
    best = std::min(best, s);
    total += s;
    ++reps;
  }
  return 2.0 * M * N * K / best / 1e9;
}

}  // namespace

// The kernel the products ran on: a bf16 one under --bf16.
static std::string kernel_name() {
  return heed::cpu::allow_bf16_matmul() ? heed::cpu::bf16_matmul_kernel() : heed::cpu::gemm_kernel_name();
}

static int run(int argc, char** argv) {
  int threads = heed::cpu::num_threads();
  std::vector<int64_t> sizes = {256, 512, 1024, 2048};
  std::vector<Shape> shapes;
  double min_time = 1.0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--threads" && value) {
      threads = std::atoi(value);
      ++i;
    } else if (arg == "--sizes" && value) {
      sizes = parse_sizes(value);
      ++i;
    } else if (arg == "--shapes" && value) {
      shapes = parse_shapes(value);
      ++i;
    } else if (arg == "--kernel" && value) {
      heed::cpu::set_gemm_kernel(value);
      ++i;
    } else if (arg == "--min-time" && value) {
      min_time = std::atof(value);
      ++i;
    } else if (arg == "--bf16") {  // float32 products of bf16 inputs (heed::cpu::set_allow_bf16_matmul)
      heed::cpu::set_allow_bf16_matmul(true);
    } else {
      std::fprintf(stderr,
                   "usage: gemm_bench [--threads N] [--sizes 256,512,...] "
                   "[--kernel avx512|avx2|portable] [--min-time SECONDS] [--shapes MxNxK:nn|nt|tn,...] [--bf16]\n");
      return 2;
    }
  }
  heed::cpu::set_num_threads(threads);

  // The peak is measured before and after the GEMM runs and the best kept, so
  // that a busy moment on a shared machine does not understate it.
  Peaks peaks;
  peaks.measure(threads);
  if (shapes.empty()) {
    for (int64_t n : sizes) {
      double gflops = bench_shape({n, n, n, "nn"}, min_time);
      std::printf("{\"impl\": \"heed\", \"kernel\": \"%s\", \"threads\": %d, \"size\": %lld, "
                  "\"gflops\": %.1f}\n",
                  kernel_name().c_str(), threads, static_cast<long long>(n), gflops);
      std::fflush(stdout);
    }
  }
  for (const Shape& s : shapes) {
    double gflops = bench_shape(s, min_time);
    std::printf("{\"impl\": \"heed\", \"kernel\": \"%s\", \"threads\": %d, \"shape\": \"%lldx%lldx%lld:%s\", "
                "\"gflops\": %.1f}\n",
                kernel_name().c_str(), threads, static_cast<long long>(s.m), static_cast<long long>(s.n),
                static_cast<long long>(s.k), s.layout.c_str(), gflops);
    std::fflush(stdout);
  }
  peaks.measure(threads);
  peaks.print(threads);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // a bad --threads or --kernel
    std::fprintf(stderr, "gemm_bench: %s\n", e.what());
    return 2;
  }
}
