// How the CUDA matmul turns strided row-major operands into cuBLAS's
// column-major strided-batched GEMM (cuda/matmul_layout.h), checked on the
// CPU: the planned arguments are fed to a reference GEMM that reads memory
// exactly as cuBLAS's documentation says it does, and the result must be the
// product of the operands' logical values.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/matmul.h"
#include "cuda/matmul_layout.h"
#include "tensor/ops.h"
#include "tests/test_devices.h"

using namespace heed;
using namespace heed::cuda;

namespace {

Tensor rnd(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, &gen, DType::Float64);
}

// cublas<t>gemmStridedBatched as documented: C = op(A) op(B) with column-major
// A, B, C; op(A) is m x k, op(B) is k x n. Also checks the documented limits
// on the leading dimensions.
void reference_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const double* A, int64_t lda,
                    int64_t stride_a, const double* B, int64_t ldb, int64_t stride_b, double* C, int64_t ldc,
                    int64_t stride_c, int64_t batch) {
  REQUIRE(lda >= std::max<int64_t>(1, trans_a ? k : m));
  REQUIRE(ldb >= std::max<int64_t>(1, trans_b ? n : k));
  REQUIRE(ldc >= std::max<int64_t>(1, m));
  REQUIRE(stride_a >= 0);
  REQUIRE(stride_b >= 0);
  for (int64_t p = 0; p < batch; ++p) {
    const double* a = A + p * stride_a;
    const double* b = B + p * stride_b;
    double* c = C + p * stride_c;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t l = 0; l < k; ++l) {
          const double av = trans_a ? a[l + i * lda] : a[i + l * lda];
          const double bv = trans_b ? b[j + l * ldb] : b[l + j * ldb];
          sum += av * bv;
        }
        c[i + j * ldc] = sum;
      }
  }
}

// out [B, M, N] through the plan, as cuda/matmul.cpp calls cuBLAS.
std::vector<double> via_plan(const GemmPlan& p, const Tensor& a, const Tensor& b) {
  std::vector<double> out(static_cast<size_t>(p.batch * p.m * p.n));
  reference_gemm(p.transpose_first, p.transpose_second, p.m, p.n, p.k, static_cast<const double*>(b.raw_data()),
                 p.ld_first, p.stride_first, static_cast<const double*>(a.raw_data()), p.ld_second, p.stride_second,
                 out.data(), p.ld_out, p.stride_out, p.batch);
  return out;
}

// The product from logical values only.
std::vector<double> naive(const Tensor& a, const Tensor& b) {
  const int64_t B = a.shape()[0], M = a.shape()[1], K = a.shape()[2], N = b.shape()[2];
  const std::vector<double> av = contiguous(a).to_vector<double>(), bv = contiguous(b).to_vector<double>();
  std::vector<double> out(static_cast<size_t>(B * M * N));
  for (int64_t p = 0; p < B; ++p)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double sum = 0;
        for (int64_t l = 0; l < K; ++l) sum += av[(p * M + i) * K + l] * bv[(p * K + l) * N + j];
        out[(p * M + i) * N + j] = sum;
      }
  return out;
}

GemmPlan plan_of(const Tensor& a, const Tensor& b) {
  return plan_gemm(a.shape().data(), a.strides().data(), b.shape().data(), b.strides().data());
}

void check_in_place(const Tensor& a, const Tensor& b) {
  CAPTURE(a.shape(), a.strides(), b.shape(), b.strides());
  const GemmPlan p = plan_of(a, b);
  REQUIRE(p.a.ok);
  REQUIRE(p.b.ok);
  const std::vector<double> got = via_plan(p, a, b), want = naive(a, b);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(1e-12));
}

}  // namespace

TEST_CASE("cuda matmul layout: row- and column-major operands are read in place", "[cuda][matmul]") {
  const int64_t B = 3, M = 4, K = 5, N = 6;
  const Tensor a = rnd({B, M, K}, 1), b = rnd({B, K, N}, 2);
  const Tensor a_t = transpose(contiguous(transpose(a, 1, 2)), 1, 2);  // column-major [M, K] matrices
  const Tensor b_t = transpose(contiguous(transpose(b, 1, 2)), 1, 2);
  for (const Tensor& x : {a, a_t})
    for (const Tensor& y : {b, b_t}) check_in_place(x, y);

  // the plain case: no transposes, leading dims K and N
  const GemmPlan p = plan_of(a, b);
  CHECK_FALSE(p.transpose_first);
  CHECK_FALSE(p.transpose_second);
  CHECK(p.m == N);
  CHECK(p.n == M);
  CHECK(p.k == K);
  CHECK(p.ld_first == N);
  CHECK(p.ld_second == K);
  CHECK(p.stride_first == K * N);
  CHECK(p.stride_second == M * K);
  CHECK(p.stride_out == M * N);
  // transposed views become cuBLAS transposes
  const GemmPlan q = plan_of(a_t, b_t);
  CHECK(q.transpose_first);
  CHECK(q.transpose_second);
  CHECK(q.ld_first == K);
  CHECK(q.ld_second == M);
}

TEST_CASE("cuda matmul layout: slices, permuted batches and broadcast batches need no copy", "[cuda][matmul]") {
  // columns sliced off: leading dim larger than the row
  const Tensor wide = rnd({2, 4, 9}, 3);
  const Tensor a = narrow(wide, 2, 2, 5);  // [2, 4, 5], ld 9
  const Tensor b = narrow(rnd({2, 5, 8}, 4), 2, 1, 6);
  check_in_place(a, b);
  // heads in the middle: [M, B, K] permuted to [B, M, K] (batch stride K, ld B * K)
  const Tensor heads = permute(rnd({4, 2, 5}, 5), {1, 0, 2});
  check_in_place(heads, b);
  // a weight shared by every product: batch stride 0
  const Tensor w = expand(rnd({1, 5, 6}, 6), {2, 5, 6});
  check_in_place(a, w);
  CHECK(plan_of(a, w).stride_first == 0);
  // and a transposed shared weight
  const Tensor w_t = expand(transpose(rnd({1, 6, 5}, 7), 1, 2), {2, 5, 6});
  check_in_place(a, w_t);
  CHECK(plan_of(a, w_t).transpose_first);
}

TEST_CASE("cuda matmul layout: size-1 dims take any stride", "[cuda][matmul]") {
  // M = 1 (a vector times a matrix) and N = 1 (a matrix times a vector), with
  // the strides a view of a size-1 dim may carry.
  const Tensor row = slice(rnd({3, 4, 5}, 8), 1, 2, 3);  // [3, 1, 5], row stride 5
  const Tensor col = slice(rnd({3, 5, 4}, 9), 2, 1, 2);  // [3, 5, 1], col stride 4, row stride 4
  check_in_place(row, rnd({3, 5, 6}, 10));
  check_in_place(rnd({3, 6, 5}, 11), col);
  check_in_place(row, col);                                 // a dot product per batch
  check_in_place(transpose(col, 1, 2), transpose(row, 1, 2));  // [3, 1, 5] x [3, 5, 1], strided
  // K = 1: an outer product
  check_in_place(slice(rnd({2, 3, 4}, 12), 2, 0, 1), slice(rnd({2, 3, 4}, 13), 1, 0, 1));
  // a single product: batch stride does not matter
  const Tensor one = select(rnd({4, 3, 5}, 14), 0, 1).unsqueeze(0);
  check_in_place(one, rnd({1, 5, 2}, 15));
  CHECK(plan_of(one, rnd({1, 5, 2}, 15)).stride_second == 0);
}

TEST_CASE("cuda matmul layout: operands cuBLAS cannot read are flagged for a contiguous copy", "[cuda][matmul]") {
  const Tensor b = rnd({2, 5, 6}, 16);
  // every other column: neither unit row nor unit column steps
  const Tensor stepped = slice(rnd({2, 4, 10}, 17), 2, 0, 10, 2);
  CHECK_FALSE(plan_of(stepped, b).a.ok);
  CHECK(plan_of(stepped, b).b.ok);
  // a row broadcast to every row (row stride 0): rows would overlap
  const Tensor rows = expand(rnd({2, 1, 5}, 18), {2, 4, 5});
  CHECK_FALSE(plan_of(rows, b).a.ok);
  // after a contiguous copy both are fine
  check_in_place(contiguous(stepped), b);
  check_in_place(contiguous(rows), b);
}

TEST_CASE("cuda matmul: TF32 is off unless asked for, in every build", "[cuda][matmul]") {
  CHECK_FALSE(allow_tf32());
  set_allow_tf32(true);
  CHECK(allow_tf32());
  set_allow_tf32(false);
  CHECK_FALSE(allow_tf32());
}

// ---- on a GPU: cuBLAS against the CPU ------------------------------------------

namespace {

void check_close(const Tensor& got, const Tensor& want, double tol) {
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> g = to_dtype(got.to(kCPU), DType::Float64).to_vector<double>();
  const std::vector<double> w = to_dtype(contiguous(want), DType::Float64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(w[i]).margin(tol).epsilon(tol));
}

}  // namespace

TEST_CASE("cuda matmul: cuBLAS agrees with the CPU on every layout, float32 and float64", "[cuda][matmul][device]") {
  HEED_SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const double tol = dtype == DType::Float32 ? 1e-4 : 1e-12;
    auto r = [&](const Shape& s, uint64_t seed) { return to_dtype(rnd(s, seed), dtype); };
    const Tensor a = r({3, 33, 17}, 50), b = r({3, 17, 65}, 51);
    const Tensor ga = a.to(kCUDA), gb = b.to(kCUDA);
    check_close(matmul(ga, gb), matmul(a, b), tol);
    // transposed views (read as cuBLAS transposes)
    const Tensor at = r({3, 17, 33}, 52), bt = r({3, 65, 17}, 53);
    check_close(matmul(transpose(at.to(kCUDA), 1, 2), transpose(bt.to(kCUDA), 1, 2)),
                matmul(transpose(at, 1, 2), transpose(bt, 1, 2)), tol);
    // a shared weight broadcast over the batch, heads permuted, a sliced operand
    const Tensor w = r({17, 65}, 54);
    check_close(matmul(ga, w.to(kCUDA)), matmul(a, w), tol);
    const Tensor heads = r({33, 3, 17}, 55);
    check_close(matmul(permute(heads.to(kCUDA), {1, 0, 2}), gb), matmul(permute(heads, {1, 0, 2}), b), tol);
    const Tensor wide = r({3, 33, 40}, 56);
    check_close(matmul(narrow(wide.to(kCUDA), 2, 5, 17), gb), matmul(narrow(wide, 2, 5, 17), b), tol);
    // vectors and an empty inner dim
    const Tensor v = r({17}, 57);
    check_close(matmul(v.to(kCUDA), gb), matmul(v, b), tol);
    check_close(matmul(r({4, 0}, 58).to(kCUDA), r({0, 5}, 59).to(kCUDA)), zeros({4, 5}, dtype), 0);
  }
  // TF32: close but not float32-exact; switched off again afterwards
  const Tensor a = rnd({256, 256}, 60), b = rnd({256, 256}, 61);
  const Tensor fa = to_dtype(a, DType::Float32), fb = to_dtype(b, DType::Float32);
  set_allow_tf32(true);
  const Tensor fast = matmul(fa.to(kCUDA), fb.to(kCUDA));
  set_allow_tf32(false);
  check_close(fast, matmul(fa, fb), 5e-2);
  check_close(matmul(fa.to(kCUDA), fb.to(kCUDA)), matmul(fa, fb), 1e-4);
}
