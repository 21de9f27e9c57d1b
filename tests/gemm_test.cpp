// heed::cpu::gemm against a naive double-precision triple loop, for every
// micro-kernel this CPU has, and heed::cpu::parallel_for, the pool under it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#if defined(__unix__)
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "tensor/bfloat16.h"
#include "tensor/cpu/gemm.h"
#include "tensor/cpu/matmul.h"
#include "tensor/cpu/parallel.h"

namespace {

using heed::cpu::gemm;

// Restores the thread count, the GEMM kernel and the bf16 switch a test changed.
struct RestoreSettings {
  int threads = heed::cpu::num_threads();
  std::string kernel = heed::cpu::gemm_kernel_name();
  bool bf16 = heed::cpu::allow_bf16_matmul();
  ~RestoreSettings() {
    heed::cpu::set_num_threads(threads);
    heed::cpu::set_gemm_kernel(kernel);
    heed::cpu::set_allow_bf16_matmul(bf16);
  }
};

// How an operand is laid out in memory.
enum class Layout {
  row_major,  // (r, c) at r*cols + c
  col_major,  // (r, c) at c*rows + r: a transposed operand
  sliced,     // every other column of every third row of a larger matrix
};

// A rows x cols matrix stored with explicit strides in a larger buffer.
template <typename T>
struct Operand {
  std::vector<T> buffer;
  int64_t rows = 0, cols = 0, rs = 0, cs = 0;
  T* data() { return buffer.data(); }
  T& at(int64_t r, int64_t c) { return buffer[r * rs + c * cs]; }
  T get(int64_t r, int64_t c) const { return buffer[r * rs + c * cs]; }
};

template <typename T>
Operand<T> make_operand(int64_t rows, int64_t cols, Layout layout, std::mt19937& rng) {
  Operand<T> m;
  m.rows = rows;
  m.cols = cols;
  switch (layout) {
    case Layout::row_major: m.rs = cols; m.cs = 1; break;
    case Layout::col_major: m.rs = 1; m.cs = rows; break;
    case Layout::sliced: m.rs = 3 * (2 * cols + 1); m.cs = 2; break;
  }
  // One element more than the largest offset, and NaN between the elements so
  // a read outside the view shows up in the result.
  int64_t size = rows > 0 && cols > 0 ? (rows - 1) * m.rs + (cols - 1) * m.cs + 1 : 0;
  m.buffer.assign(size, std::numeric_limits<T>::quiet_NaN());
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.at(r, c) = static_cast<T>(dist(rng));
  return m;
}

// A value as a bf16 matmul reads it.
double bf16_input(double x) { return static_cast<float>(heed::bfloat16(static_cast<float>(x))); }

// Checks C == alpha*A*B + beta*C0 elementwise within a rounding bound that
// grows with K: |error| <= tol * (|alpha| sum_k |a||b| + |beta c0|). With
// bf16_inputs, A and B are rounded to bf16 first (their products are exact
// in float32, so only the float32 sums round, and the bound is the same).
template <typename T>
void check_against_reference(const Operand<T>& A, const Operand<T>& B, const Operand<T>& C0,
                             const Operand<T>& C, T alpha, T beta, bool bf16_inputs = false) {
  const int64_t M = A.rows, K = A.cols, N = B.cols;
  const double eps = std::numeric_limits<T>::epsilon();
  const double tol = (K + 4) * eps;
  int64_t bad = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        double a = static_cast<double>(A.get(i, k)), b = static_cast<double>(B.get(k, j));
        if (bf16_inputs) a = bf16_input(a), b = bf16_input(b);
        double p = a * b;
        sum += p;
        mag += std::fabs(p);
      }
      double expect = alpha * sum, bound = std::fabs(alpha) * mag;
      if (beta != T(0)) {
        expect += beta * static_cast<double>(C0.get(i, j));
        bound += std::fabs(beta * static_cast<double>(C0.get(i, j)));
      }
      double got = C.get(i, j);
      if (!(std::fabs(got - expect) <= tol * bound + 1e-30)) {
        if (bad++ < 5)
          FAIL_CHECK("C(" << i << "," << j << ") = " << got << ", expected " << expect
                          << " (M=" << M << " N=" << N << " K=" << K << ")");
      }
    }
  REQUIRE(bad == 0);
}

template <typename T>
void run_case(int64_t M, int64_t N, int64_t K, Layout la, Layout lb, Layout lc, T alpha, T beta,
              uint32_t seed = 1, bool bf16_inputs = false) {
  INFO("M=" << M << " N=" << N << " K=" << K << " layouts " << int(la) << int(lb) << int(lc)
            << " alpha=" << alpha << " beta=" << beta << " kernel "
            << heed::cpu::gemm_kernel_name());
  std::mt19937 rng(seed);
  auto A = make_operand<T>(M, K, la, rng);
  auto B = make_operand<T>(K, N, lb, rng);
  auto C = make_operand<T>(M, N, lc, rng);
  if (beta == T(0))  // beta == 0 must not read C: NaN there may not leak out
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C.at(i, j) = std::numeric_limits<T>::quiet_NaN();
  const auto C0 = C;
  gemm(M, N, K, alpha, A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, beta, C.data(), C.rs, C.cs);
  check_against_reference(A, B, C0, C, alpha, beta, bf16_inputs);
  // Nothing between the elements of C's view was written: those stay NaN.
  std::vector<bool> in_view(C.buffer.size(), false);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) in_view[i * C.rs + j * C.cs] = true;
  int64_t written_outside = 0;
  for (size_t e = 0; e < C.buffer.size(); ++e)
    if (!in_view[e] && !std::isnan(C.buffer[e])) ++written_outside;
  REQUIRE(written_outside == 0);
}

struct Shape {
  int64_t M, N, K;
};

// Shapes around every boundary of the kernels' tiles (4x8, 6x16, 6x64), blocks
// (kc 256 or 512, mc 64 to 96, nc 256 to 512), the unpacked-path cut-offs (32^3,
// 4 rows) and B's superblocks (4096 columns, 1024 deep).
const std::vector<Shape> kShapes = {
    {1, 1, 1},     {1, 1, 7},     {2, 3, 1},    {1, 40, 33},   {37, 1, 50},   {37, 53, 29},
    {6, 64, 128},  {7, 65, 129},  {5, 63, 127}, {97, 130, 140}, {12, 257, 255},
    {14, 32, 40},  {15, 33, 41},  {6, 16, 300}, {13, 31, 257}, {64, 64, 64},  {113, 70, 33},
    {29, 257, 60}, {45, 90, 513}, {128, 96, 256}, {3, 300, 100}, {200, 5, 120},
    // few rows or columns (the unpacked path), large enough to run in parallel
    {1, 2000, 150}, {4, 600, 100}, {400, 2, 300}, {400, 1, 90},
};

const std::vector<Shape> kLargeShapes = {
    {2060, 9, 20},   // many row tasks, few columns
    {9, 4100, 12},   // crosses the superblock columns
    {20, 18, 1100},  // crosses the superblock depth
    {150, 300, 270},
};

std::vector<std::string> kernels_to_test() { return heed::cpu::gemm_available_kernels(); }

}  // namespace

TEST_CASE("gemm matches a naive loop for every kernel and shape", "[gemm]") {
  RestoreSettings restore;
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    REQUIRE(std::string(heed::cpu::gemm_kernel_name()) == kernel);
    for (const auto& s : kShapes) run_case<float>(s.M, s.N, s.K, Layout::row_major, Layout::row_major, Layout::row_major, 1.0f, 0.0f);
    for (const auto& s : kLargeShapes) run_case<float>(s.M, s.N, s.K, Layout::row_major, Layout::row_major, Layout::row_major, 1.0f, 0.0f);
  }
}

TEST_CASE("gemm handles every transpose combination and strided operands", "[gemm]") {
  RestoreSettings restore;
  const Layout layouts[] = {Layout::row_major, Layout::col_major, Layout::sliced};
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    // {130, 70, 1100}: K spans several K blocks and two depth superblocks, M
    // ends in a partial panel (a column-major A is packed whole per block).
    for (Shape s : {Shape{37, 53, 29}, Shape{40, 50, 260}, Shape{5, 3, 2}, Shape{1, 600, 70},
                    Shape{300, 3, 40}, Shape{130, 70, 1100}})
      for (Layout la : layouts)
        for (Layout lb : layouts)
          for (Layout lc : layouts) run_case<float>(s.M, s.N, s.K, la, lb, lc, 1.0f, 0.5f);
  }
}

TEST_CASE("gemm alpha and beta variants", "[gemm]") {
  RestoreSettings restore;
  const float alphas[] = {1.0f, -2.5f, 0.0f};
  const float betas[] = {0.0f, 1.0f, -0.75f};
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    for (float alpha : alphas)
      for (float beta : betas)
        for (Shape s : {Shape{37, 53, 29}, Shape{60, 70, 270}, Shape{3, 4, 5}}) {
          run_case<float>(s.M, s.N, s.K, Layout::row_major, Layout::row_major, Layout::row_major, alpha, beta);
          run_case<float>(s.M, s.N, s.K, Layout::col_major, Layout::sliced, Layout::col_major, alpha, beta);
        }
  }
}

TEST_CASE("gemm with K == 0 scales C, ignoring NaN when beta == 0", "[gemm]") {
  std::vector<float> c(6, std::numeric_limits<float>::quiet_NaN());
  gemm(2, 3, 0, 1.0f, nullptr, 0, 1, nullptr, 3, 1, 0.0f, c.data(), 3, 1);
  for (float x : c) REQUIRE(x == 0.0f);
  std::vector<float> d = {1, 2, 3, 4, 5, 6};
  gemm(2, 3, 0, 1.0f, nullptr, 0, 1, nullptr, 3, 1, 2.0f, d.data(), 3, 1);
  REQUIRE(d == std::vector<float>({2, 4, 6, 8, 10, 12}));
  // M == 0 or N == 0: nothing to do, nothing touched.
  gemm(0, 3, 4, 1.0f, nullptr, 4, 1, nullptr, 3, 1, 0.0f, nullptr, 3, 1);
  gemm(2, 0, 4, 1.0f, nullptr, 4, 1, nullptr, 3, 1, 0.0f, nullptr, 3, 1);
  REQUIRE_THROWS_AS(gemm(-1, 3, 4, 1.0f, nullptr, 4, 1, nullptr, 3, 1, 0.0f, nullptr, 3, 1),
                    std::invalid_argument);
}

TEST_CASE("gemm with a broadcast (stride 0) B", "[gemm]") {
  RestoreSettings restore;
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    for (bool bf16 : {false, true}) {
      heed::cpu::set_allow_bf16_matmul(bf16);
      for (Shape s : {Shape{37, 53, 29}, Shape{120, 80, 300}}) {
        INFO("kernel " << kernel << (bf16 ? " with bf16 inputs" : "") << " M=" << s.M << " N=" << s.N
                       << " K=" << s.K);
        std::mt19937 rng(7);
        auto A = make_operand<float>(s.M, s.K, Layout::row_major, rng);
        // B[k, j] = v[j] for every k (row stride 0), then B[k, j] = w[k] (column stride 0).
        auto v = make_operand<float>(1, s.N, Layout::row_major, rng);
        auto w = make_operand<float>(s.K, 1, Layout::row_major, rng);
        Operand<float> Bv = v, Bw = w;
        Bv.rows = s.K; Bv.rs = 0;
        Bw.cols = s.N; Bw.cs = 0;
        for (auto* B : {&Bv, &Bw}) {
          auto C = make_operand<float>(s.M, s.N, Layout::row_major, rng);
          const auto C0 = C;
          gemm(s.M, s.N, s.K, 1.0f, A.data(), A.rs, A.cs, B->data(), B->rs, B->cs, 0.0f, C.data(), C.rs, C.cs);
          check_against_reference(A, *B, C0, C, 1.0f, 0.0f, bf16);
        }
      }
    }
  }
}

TEST_CASE("gemm in double precision", "[gemm]") {
  for (const auto& s : kShapes) run_case<double>(s.M, s.N, s.K, Layout::row_major, Layout::row_major, Layout::row_major, 1.0, 0.0);
  const Layout layouts[] = {Layout::row_major, Layout::col_major, Layout::sliced};
  for (Layout la : layouts)
    for (Layout lb : layouts)
      for (Layout lc : layouts) run_case<double>(41, 67, 300, la, lb, lc, -1.5, 0.25);
  run_case<double>(20, 18, 1100, Layout::col_major, Layout::row_major, Layout::row_major, 1.0, 1.0);
}

TEST_CASE("gemm results are bit-identical for 1, 2 and 3 threads", "[gemm]") {
  RestoreSettings restore;
  const int64_t M = 130, N = 270, K = 600;  // several tasks and K blocks, partial tiles
  std::mt19937 rng(3);
  auto A = make_operand<float>(M, K, Layout::row_major, rng);
  auto B = make_operand<float>(K, N, Layout::col_major, rng);
  auto At = make_operand<float>(M, K, Layout::col_major, rng);  // a weight gradient's dY^T
  auto Ad = make_operand<double>(M, K, Layout::row_major, rng);
  auto Bd = make_operand<double>(K, N, Layout::row_major, rng);
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    INFO("kernel " << kernel);
    // A row-major A, and a column-major one (packed whole).
    for (auto* a : {&A, &At}) {
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        heed::cpu::set_num_threads(threads);
        std::vector<float> c(M * N, 1.0f);
        gemm(M, N, K, 0.7f, a->data(), a->rs, a->cs, B.data(), B.rs, B.cs, 0.3f, c.data(), N, 1);
        if (first.empty()) first = c;
        REQUIRE(std::memcmp(c.data(), first.data(), c.size() * sizeof(float)) == 0);
      }
    }
  }
  // The unpacked path for few rows, split by columns between threads.
  {
    std::vector<float> first_skinny;
    for (int threads : {1, 2, 3}) {
      heed::cpu::set_num_threads(threads);
      std::vector<float> c(3 * N * 4);
      gemm(3, N * 4, K / 2, 1.0f, A.data(), A.rs, A.cs, B.data(), 0, 1, 0.0f, c.data(), N * 4, 1);
      if (first_skinny.empty()) first_skinny = c;
      REQUIRE(std::memcmp(c.data(), first_skinny.data(), c.size() * sizeof(float)) == 0);
    }
  }
  std::vector<double> first;
  for (int threads : {1, 2, 3}) {
    heed::cpu::set_num_threads(threads);
    std::vector<double> c(M * N);
    gemm(M, N, K, 1.0, Ad.data(), Ad.rs, Ad.cs, Bd.data(), Bd.rs, Bd.cs, 0.0, c.data(), N, 1);
    if (first.empty()) first = c;
    REQUIRE(std::memcmp(c.data(), first.data(), c.size() * sizeof(double)) == 0);
  }
}

// gemm_add must give exactly the bits of copying D into C and calling gemm:
// the linear layer's bias and residual moved into the GEMM change no result.
template <typename T>
void check_gemm_add(int64_t M, int64_t N, int64_t K, Layout la, Layout lc, T beta, uint32_t seed) {
  std::mt19937 rng(seed);
  auto A = make_operand<T>(M, K, la, rng);
  auto B = make_operand<T>(K, N, Layout::col_major, rng);  // x W^T: the weight read transposed
  auto bias = make_operand<T>(1, N, Layout::row_major, rng);
  auto column = make_operand<T>(M, 1, Layout::row_major, rng);
  auto residual = make_operand<T>(M, N, Layout::sliced, rng);
  struct D {
    const char* name;
    const T* d;
    int64_t rsd, csd;
  };
  for (const D& d : {D{"a bias broadcast over rows", bias.data(), 0, 1},
                     D{"a column broadcast over columns", column.data(), 1, 0},
                     D{"a strided residual", residual.data(), residual.rs, residual.cs}}) {
    INFO("M=" << M << " N=" << N << " K=" << K << " A layout " << int(la) << " C layout " << int(lc) << ", D "
              << d.name << ", beta " << beta << ", kernel " << heed::cpu::gemm_kernel_name());
    auto want = make_operand<T>(M, N, lc, rng);
    auto got = want;  // the same NaN between the elements of the view
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        want.at(i, j) = d.d[i * d.rsd + j * d.csd];
        got.at(i, j) = std::numeric_limits<T>::quiet_NaN();  // never read: the product adds to D
      }
    gemm(M, N, K, T(0.75), A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, beta, want.data(), want.rs, want.cs);
    heed::cpu::gemm_add(M, N, K, T(0.75), A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, beta, d.d, d.rsd, d.csd,
                        got.data(), got.rs, got.cs);
    if (beta == T(0))  // nothing read from D, and C overwritten
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) REQUIRE(!std::isnan(got.get(i, j)));
    REQUIRE(want.buffer.size() == got.buffer.size());
    REQUIRE(std::memcmp(want.buffer.data(), got.buffer.data(), want.buffer.size() * sizeof(T)) == 0);
  }
}

TEST_CASE("gemm_add equals copying D into C then gemm, to the bit", "[gemm]") {
  RestoreSettings restore;
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    for (int threads : {1, 2}) {
      heed::cpu::set_num_threads(threads);
      uint32_t seed = 40;
      for (const Shape& s : kShapes)
        for (Layout lc : {Layout::row_major, Layout::col_major}) check_gemm_add<float>(s.M, s.N, s.K, Layout::row_major, lc, 1.0f, ++seed);
      // A weight gradient's column-major A; depth past a superblock; K == 0; beta 0 and 0.5.
      check_gemm_add<float>(150, 300, 270, Layout::col_major, Layout::row_major, 1.0f, 7);
      check_gemm_add<float>(20, 70, 1100, Layout::row_major, Layout::row_major, 1.0f, 8);
      check_gemm_add<float>(9, 13, 0, Layout::row_major, Layout::row_major, 1.0f, 9);
      check_gemm_add<float>(97, 130, 140, Layout::row_major, Layout::row_major, 0.5f, 10);
      check_gemm_add<float>(97, 130, 140, Layout::row_major, Layout::row_major, 0.0f, 11);
      check_gemm_add<float>(3, 300, 100, Layout::row_major, Layout::row_major, 0.0f, 12);
      check_gemm_add<double>(45, 90, 513, Layout::row_major, Layout::row_major, 1.0, 13);
      check_gemm_add<double>(1, 40, 33, Layout::row_major, Layout::col_major, 1.0, 14);
    }
  }
}

// A column-major A with a row-major B (a weight gradient's dY^T X) is read in
// place by the strided kernel rather than packed: the same K blocks and the
// same kernel arithmetic, so the bits must equal the packed path's (which a
// row-major copy of A takes).
TEST_CASE("gemm reads k-major operands in place with the packed path's bits", "[gemm]") {
  RestoreSettings restore;
  const std::vector<Shape> shapes = {{6, 64, 1}, {256, 256, 2040}, {97, 130, 140}, {12, 257, 1100},
                                     {7, 65, 513}, {130, 70, 600},  {6, 4200, 20}, {50, 64, 3000}};
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    for (int threads : {1, 2, 3}) {
      heed::cpu::set_num_threads(threads);
      uint32_t seed = 60;
      for (const Shape& s : shapes) {
        INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " kernel " << kernel << " threads " << threads);
        std::mt19937 rng(++seed);
        auto At = make_operand<float>(s.M, s.K, Layout::col_major, rng);
        auto B = make_operand<float>(s.K, s.N, Layout::row_major, rng);
        auto A = make_operand<float>(s.M, s.K, Layout::row_major, rng);
        for (int64_t i = 0; i < s.M; ++i)
          for (int64_t k = 0; k < s.K; ++k) A.at(i, k) = At.get(i, k);
        std::vector<float> want(s.M * s.N, 0.5f), got(want);
        gemm(s.M, s.N, s.K, 0.7f, A.data(), A.rs, A.cs, B.data(), B.rs, B.cs, 0.3f, want.data(), s.N, 1);
        gemm(s.M, s.N, s.K, 0.7f, At.data(), At.rs, At.cs, B.data(), B.rs, B.cs, 0.3f, got.data(), s.N, 1);
        REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("gemm kernel selection", "[gemm]") {
  RestoreSettings restore;
  auto kernels = heed::cpu::gemm_available_kernels();
  REQUIRE(!kernels.empty());
  REQUIRE(kernels.back() == "portable");
  const std::string name = heed::cpu::gemm_kernel_name();
  REQUIRE((name == "avx512" || name == "avx2" || name == "portable"));
  REQUIRE_THROWS_AS(heed::cpu::set_gemm_kernel("sse9"), std::invalid_argument);
  for (const auto& k : kernels) {
    heed::cpu::set_gemm_kernel(k);
    REQUIRE(k == heed::cpu::gemm_kernel_name());
  }
}

TEST_CASE("parallel_for covers every item exactly once, in fixed chunks", "[gemm][parallel]") {
  RestoreSettings restore;
  for (int threads : {1, 2, 3, 8}) {
    heed::cpu::set_num_threads(threads);
    for (int64_t grain : {1, 3, 64, 1000}) {
      const int64_t begin = -17, end = 1000;
      std::vector<std::atomic<int>> hits(end - begin);
      std::vector<std::atomic<int64_t>> chunk_of(end - begin);
      std::atomic<int> bad_chunks{0};  // Catch2 assertions are not thread-safe
      heed::cpu::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) {
        if (!(b < e && e - b <= grain)) bad_chunks++;
        for (int64_t i = b; i < e; ++i) {
          hits[i - begin]++;
          chunk_of[i - begin] = b;
        }
      });
      REQUIRE(bad_chunks == 0);
      for (int64_t i = begin; i < end; ++i) {
        REQUIRE(hits[i - begin] == 1);
        // The cut depends only on (begin, end, grain).
        REQUIRE(chunk_of[i - begin] == begin + (i - begin) / grain * grain);
      }
    }
  }
  int calls = 0;
  heed::cpu::parallel_for(5, 5, 1, [&](int64_t, int64_t) { ++calls; });
  heed::cpu::parallel_for(9, 2, 1, [&](int64_t, int64_t) { ++calls; });
  REQUIRE(calls == 0);
  REQUIRE_THROWS_AS(heed::cpu::parallel_for(0, 10, 0, [](int64_t, int64_t) {}), std::invalid_argument);
}

TEST_CASE("parallel_for nested inside a chunk runs inline", "[gemm][parallel]") {
  RestoreSettings restore;
  heed::cpu::set_num_threads(3);
  std::vector<std::atomic<int>> hits(40 * 50);
  heed::cpu::parallel_for(0, 40, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      heed::cpu::parallel_for(0, 50, 7, [&](int64_t bb, int64_t ee) {
        for (int64_t j = bb; j < ee; ++j) hits[i * 50 + j]++;
      });
  });
  for (auto& h : hits) REQUIRE(h == 1);
}

TEST_CASE("parallel_for rethrows the first exception after the others stop", "[gemm][parallel]") {
  RestoreSettings restore;
  for (int threads : {1, 2, 3}) {
    heed::cpu::set_num_threads(threads);
    std::atomic<int> running{0};
    auto body = [&](int64_t b, int64_t) {
      running++;
      if (b == 20) {
        running--;
        throw std::runtime_error("chunk 20 failed");
      }
      running--;
    };
    REQUIRE_THROWS_WITH(heed::cpu::parallel_for(0, 100, 1, body), "chunk 20 failed");
    REQUIRE(running == 0);  // no chunk still runs when the exception arrives
    // The pool is still usable afterwards.
    std::atomic<int64_t> sum{0};
    heed::cpu::parallel_for(0, 100, 1, [&](int64_t b, int64_t) { sum += b; });
    REQUIRE(sum == 4950);
  }
}

TEST_CASE("set_num_threads validates and num_threads reports", "[gemm][parallel]") {
  RestoreSettings restore;
  REQUIRE(heed::cpu::num_threads() >= 1);
  REQUIRE_THROWS_AS(heed::cpu::set_num_threads(0), std::invalid_argument);
  REQUIRE_THROWS_AS(heed::cpu::set_num_threads(-3), std::invalid_argument);
  heed::cpu::set_num_threads(2);
  REQUIRE(heed::cpu::num_threads() == 2);
}

// ThreadSanitizer does not allow new threads in a child of a threaded process.
#if defined(__unix__) && !defined(__SANITIZE_THREAD__)
TEST_CASE("parallel_for works in a child made by fork()", "[gemm][parallel]") {
  RestoreSettings restore;
  heed::cpu::set_num_threads(2);
  std::atomic<int64_t> sum{0};
  heed::cpu::parallel_for(0, 100, 1, [&](int64_t b, int64_t) { sum += b; });  // workers exist now
  REQUIRE(sum == 4950);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(20);  // a deadlock ends the child instead of hanging the test
    std::atomic<int64_t> child_sum{0};
    heed::cpu::parallel_for(0, 100, 1, [&](int64_t b, int64_t) { child_sum += b; });
    std::vector<float> c(64 * 64);
    std::vector<float> a(64 * 64, 1.0f);
    gemm(64, 64, 64, 1.0f, a.data(), 64, 1, a.data(), 64, 1, 0.0f, c.data(), 64, 1);
    _exit(child_sum == 4950 && c[0] == 64.0f ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}
#endif

TEST_CASE("gemm_packed_b multiplies by blocks of a packed B for every kernel", "[gemm]") {
  RestoreSettings restore;
  auto check = [](auto zero, Layout la, Layout lb) {
    using T = decltype(zero);
    std::mt19937 rng(7);
    const int64_t KB = 150, NB = 200;  // the packed operand
    auto B = make_operand<T>(KB, NB, lb, rng);
    heed::cpu::PackedB<T> packed;
    packed.pack(KB, NB, B.data(), B.rs, B.cs);
    REQUIRE(packed.rows() == KB);
    REQUIRE(packed.cols() == NB);
    struct Block {
      int64_t M, N, K, k0, j0;
    };
    for (Block s : {Block{13, 70, 40, 0, 0}, Block{96, 128, 64, 64, 64}, Block{1, 5, 150, 0, 192},
                    Block{7, 136, 23, 127, 64}, Block{100, 200, 150, 0, 0}}) {
      INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " k0=" << s.k0 << " j0=" << s.j0);
      auto A = make_operand<T>(s.M, s.K, la, rng);
      auto C = make_operand<T>(s.M, s.N, Layout::row_major, rng);
      Operand<T> Bs;  // the block as an operand of its own, for the reference
      Bs.rows = s.K, Bs.cols = s.N, Bs.rs = B.rs, Bs.cs = B.cs;
      Bs.buffer.assign(B.buffer.begin() + s.k0 * B.rs + s.j0 * B.cs, B.buffer.end());
      for (T beta : {T(0), T(0.5)}) {
        const auto C0 = C;
        auto out = C;
        heed::cpu::gemm_packed_b(s.M, s.N, s.K, T(1.5), A.data(), A.rs, A.cs, packed, s.k0, s.j0, beta, out.data(),
                                 out.rs, out.cs);
        check_against_reference(A, Bs, C0, out, T(1.5), beta);
        heed::cpu::PackedA<T> pa;  // the same product with A packed as well
        pa.pack(s.M, s.K, A.data(), A.rs, A.cs);
        auto out_ab = C;
        heed::cpu::gemm_packed_ab(s.N, T(1.5), pa, packed, s.k0, s.j0, beta, out_ab.data(), out_ab.rs, out_ab.cs);
        REQUIRE(out_ab.buffer == out.buffer);  // bit for bit: the same panels, the same kernel
      }
    }
    T c = 0, a = 1;
    REQUIRE_THROWS_AS(heed::cpu::gemm_packed_b(1, 1, 1, T(1), &a, 1, 1, packed, 0, 32, T(0), &c, 1, 1),
                      std::invalid_argument);  // j0 not a multiple of 64
    REQUIRE_THROWS_AS(heed::cpu::gemm_packed_b(1, 1, 2, T(1), &a, 1, 1, packed, 149, 0, T(0), &c, 1, 1),
                      std::invalid_argument);  // rows past the end
  };
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    INFO("kernel " << kernel);
    for (Layout la : {Layout::row_major, Layout::col_major})
      for (Layout lb : {Layout::row_major, Layout::col_major, Layout::sliced}) {
        check(float{}, la, lb);
        check(double{}, la, lb);
      }
  }
}

// ---- bf16 matmuls (set_allow_bf16_matmul) ------------------------------------

namespace {

bool cpu_has_bf16_kernel() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

}  // namespace

TEST_CASE("bf16 matmuls are float32 sums of bf16-rounded inputs, on every kernel and layout", "[gemm][bf16]") {
  RestoreSettings restore;
  heed::cpu::set_allow_bf16_matmul(true);
  REQUIRE(heed::cpu::allow_bf16_matmul());
  const Layout layouts[] = {Layout::row_major, Layout::col_major, Layout::sliced};
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    // The bf16 instructions run under the avx512 kernel on a CPU that has
    // them; any other choice rounds copies of the operands.
    const bool native = kernel == "avx512" && cpu_has_bf16_kernel();
    REQUIRE(heed::cpu::bf16_matmul_kernel() == (native ? "avx512bf16" : "emulated"));
    INFO("kernel " << kernel << ", bf16 " << heed::cpu::bf16_matmul_kernel());
    for (const auto& s : kShapes)
      run_case<float>(s.M, s.N, s.K, Layout::row_major, Layout::row_major, Layout::row_major, 1.0f, 0.0f, 1, true);
    for (const auto& s : kLargeShapes)
      run_case<float>(s.M, s.N, s.K, Layout::row_major, Layout::row_major, Layout::row_major, 1.0f, 0.0f, 1, true);
    // Odd depths (a zero pads the last pair), depths past the bf16 kernel's
    // 1024-deep blocks, partial tiles, every layout of A, B and C.
    for (Shape s : {Shape{37, 53, 29}, Shape{40, 50, 261}, Shape{1, 600, 71}, Shape{300, 3, 40},
                    Shape{130, 70, 1100}, Shape{7, 70, 2051}})
      for (Layout la : layouts)
        for (Layout lb : layouts)
          for (Layout lc : layouts) run_case<float>(s.M, s.N, s.K, la, lb, lc, 1.0f, 0.5f, 1, true);
    for (float alpha : {1.0f, -2.5f, 0.0f})
      for (float beta : {0.0f, 1.0f, -0.75f})
        run_case<float>(60, 70, 271, Layout::col_major, Layout::row_major, Layout::row_major, alpha, beta, 2, true);
  }
}

TEST_CASE("bf16 matmuls: the same bits for 1, 2 and 3 threads; float32 again when switched off", "[gemm][bf16]") {
  RestoreSettings restore;
  const int64_t M = 130, N = 270, K = 1100;
  std::mt19937 rng(5);
  auto A = make_operand<float>(M, K, Layout::row_major, rng);
  auto At = make_operand<float>(M, K, Layout::col_major, rng);  // a weight gradient's dY^T
  auto B = make_operand<float>(K, N, Layout::col_major, rng);
  auto Br = make_operand<float>(K, N, Layout::row_major, rng);
  auto product = [&](const Operand<float>& a, const Operand<float>& b) {
    std::vector<float> c(M * N, 1.0f);
    gemm(M, N, K, 0.7f, a.buffer.data(), a.rs, a.cs, b.buffer.data(), b.rs, b.cs, 0.3f, c.data(), N, 1);
    return c;
  };
  const std::vector<float> float32 = product(A, B);
  heed::cpu::set_allow_bf16_matmul(true);
  for (const auto& kernel : kernels_to_test()) {
    heed::cpu::set_gemm_kernel(kernel);
    INFO("kernel " << kernel << ", bf16 " << heed::cpu::bf16_matmul_kernel());
    for (auto [a, b] : {std::pair{&A, &B}, std::pair{&At, &Br}}) {
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        heed::cpu::set_num_threads(threads);
        const std::vector<float> c = product(*a, *b);
        if (first.empty()) first = c;
        REQUIRE(std::memcmp(c.data(), first.data(), c.size() * sizeof(float)) == 0);
      }
    }
    // The rounding is real: most elements differ from the float32 product.
    const std::vector<float> rounded = product(A, B);
    int64_t differ = 0;
    for (size_t e = 0; e < rounded.size(); ++e) differ += rounded[e] != float32[e];
    REQUIRE(differ > static_cast<int64_t>(rounded.size()) / 2);
  }
  heed::cpu::set_allow_bf16_matmul(false);
  heed::cpu::set_gemm_kernel(restore.kernel);
  const std::vector<float> again = product(A, B);
  REQUIRE(std::memcmp(again.data(), float32.data(), again.size() * sizeof(float)) == 0);
}
