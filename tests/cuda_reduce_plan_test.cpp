// The CUDA reductions' plans (cuda/reduce_plan.h), checked on the CPU: for
// strided, sliced, broadcast and permuted inputs and every set of reduced
// dims, the plan's [n_out, n_red] index math visits exactly the elements a
// naive walk assigns to each output, the split chunks tile the reduced range,
// and the launch shapes stay within the kernels' limits. The argmax/argmin
// merge rule is checked against the CPU's sequential rule under arbitrary
// merge trees. Then, where a GPU is present, the CUDA reduce, softmax and
// layer-norm kernels against the CPU's (skipped here without one).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cuda/reduce_plan.h"
#include "cuda/register.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/tensor_impl.h"
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using heed::cuda::ReducePlan;
using namespace heed::test;

namespace {

// A strided x (shape, strides in elements) and the set of dims reduced.
struct Case {
  std::string name;
  Shape shape, strides;
};

Shape contiguous_of(const Shape& shape) {
  Shape s(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * std::max<int64_t>(shape[d], 1);
  return s;
}

// For each out offset, the sorted x offsets a naive walk folds into it.
std::map<int64_t, std::vector<int64_t>> naive_groups(const Shape& shape, const Shape& strides, const Shape& out_shape,
                                                     const Shape& out_strides) {
  std::map<int64_t, std::vector<int64_t>> groups;
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  // Every output exists even when it folds nothing (a reduced dim of size 0).
  int64_t n_out = 1;
  for (int64_t s : out_shape) n_out *= s;
  std::vector<int64_t> oi(out_shape.size(), 0);
  for (int64_t k = 0; k < n_out; ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < out_shape.size(); ++d) off += oi[d] * out_strides[d];
    groups[off];
    for (size_t d = out_shape.size(); d-- > 0;) {
      if (++oi[d] < out_shape[d]) break;
      oi[d] = 0;
    }
  }
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t xo = 0, oo = 0;
    for (size_t d = 0; d < shape.size(); ++d) {
      xo += idx[d] * strides[d];
      oo += (out_shape[d] == 1 ? 0 : idx[d]) * out_strides[d];
    }
    groups[oo].push_back(xo);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  for (auto& [o, v] : groups) std::sort(v.begin(), v.end());
  return groups;
}

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

void check_launch_shape(const ReducePlan& p) {
  CHECK(p.grid_x >= 1);
  CHECK(p.grid_x <= cuda::kMaxGridX);
  CHECK(p.splits >= 1);
  CHECK(p.splits <= cuda::kMaxSplits);
  CHECK(is_pow2(p.block_x));
  CHECK(is_pow2(p.block_y));
  if (p.columns) {
    CHECK(p.block_x <= 32);
    CHECK(p.block_x * p.block_y <= cuda::kReduceBlockThreads);  // the columns kernel's shared array
  } else {
    CHECK(p.block_x >= 32);  // whole warps per group
    CHECK(p.block_x <= cuda::kMaxGroupThreads);
    CHECK(p.block_x * p.block_y <= cuda::kMaxGroupThreads);  // the kernel's __launch_bounds__
    CHECK(p.block_x / 32 * p.block_y <= 32);  // group_reduce's shared array
  }
  // The chunks tile [0, n_red): consecutive, none empty (but for n_red = 0).
  int64_t at = 0;
  for (int64_t s = 0; s < p.splits; ++s) {
    CHECK(cuda::split_begin(p, s) == at);
    const int64_t e = cuda::split_end(p, s);
    if (p.n_red > 0) CHECK(e > at);
    at = e;
  }
  CHECK(at == p.n_red);
}

// Plans x -> out (keepdim shape of the reduced mask, with out_strides) and
// compares the plan's element sets with the naive ones.
void check_plan(const Case& c, unsigned mask, const Shape& out_strides) {
  const size_t nd = c.shape.size();
  const Shape out_shape = reduced_shape(c.shape, mask);
  ReducePlan p;
  REQUIRE(cuda::make_reduce_plan(static_cast<int>(nd), c.shape.data(), c.strides.data(), out_shape.data(),
                                 out_strides.data(), p));
  auto want = naive_groups(c.shape, c.strides, out_shape, out_strides);
  int64_t n_out = 1;
  for (int64_t s : out_shape) n_out *= s;
  REQUIRE(p.n_out == n_out);
  check_launch_shape(p);
  std::map<int64_t, std::vector<int64_t>> got;
  for (int64_t o = 0; o < p.n_out; ++o) {
    const int64_t oo = cuda::kept_out_offset(p, o);
    REQUIRE(got.count(oo) == 0);  // each output written once
    std::vector<int64_t>& v = got[oo];
    const int64_t base = cuda::kept_x_offset(p, o);
    // In split order, as the kernels and the finish kernel fold them.
    for (int64_t s = 0; s < p.splits; ++s)
      for (int64_t r = cuda::split_begin(p, s); r < cuda::split_end(p, s); ++r)
        v.push_back(base + cuda::red_x_offset(p, r));
    std::sort(v.begin(), v.end());
  }
  REQUIRE(got == want);
}

std::vector<Case> cases() {
  return {
      {"contiguous [2, 3, 4, 5]", {2, 3, 4, 5}, {60, 20, 5, 1}},
      {"permuted [3, 4, 5] of a [5, 3, 4]", {3, 4, 5}, {4, 1, 12}},
      {"every other element [3, 4, 5]", {3, 4, 5}, {40, 10, 2}},
      {"broadcast dim 0", {3, 4, 5}, {0, 5, 1}},
      {"broadcast dim 1", {3, 4, 5}, {5, 0, 1}},
      {"broadcast inner", {3, 4, 5}, {4, 1, 0}},
      {"size-1 dims", {3, 1, 4, 1, 2}, {8, 99, 2, 7, 1}},
      {"transposed [4, 3]", {4, 3}, {1, 4}},
      {"sliced rows of a [6, 7]", {3, 5}, {14, 1}},
      {"scalar", {}, {}},
      {"one element", {1, 1}, {1, 1}},
      {"a size-0 dim", {3, 0, 2}, {2, 2, 1}},
  };
}

}  // namespace

TEST_CASE("cuda reduce plan: every set of dims of strided inputs folds the naive element sets", "[cuda][plan]") {
  for (const Case& c : cases()) {
    const size_t nd = c.shape.size();
    for (unsigned mask = 0; mask < (1u << nd); ++mask) {
      INFO(c.name << ", reduced mask " << mask);
      const Shape out_shape = reduced_shape(c.shape, mask);
      check_plan(c, mask, contiguous_of(out_shape));
      // A transposed out (its dims' strides reversed) is written in place too.
      Shape rev(out_shape.rbegin(), out_shape.rend());
      Shape rs = contiguous_of(rev);
      std::reverse(rs.begin(), rs.end());
      check_plan(c, mask, rs);
    }
  }
}

TEST_CASE("cuda reduce plan: large shapes pick rows or columns, split few outputs, merge dims", "[cuda][plan]") {
  auto plan = [](const Shape& shape, const Shape& strides, const std::vector<int>& reduced) {
    Shape out_shape = shape;
    for (int d : reduced) out_shape[d] = 1;
    ReducePlan p;
    REQUIRE(cuda::make_reduce_plan(static_cast<int>(shape.size()), shape.data(), strides.data(), out_shape.data(),
                                   contiguous_of(out_shape).data(), p));
    check_launch_shape(p);
    return p;
  };
  // [R, D] over R (a bias gradient): columns, threads along the dense D.
  ReducePlan p = plan({65536, 512}, {512, 1}, {0});
  CHECK(p.columns);
  CHECK(p.kept_x_stride[p.kept_ndim - 1] == 1);
  CHECK(p.block_x == 32);
  CHECK(p.splits > 1);
  CHECK(p.grid_x * p.splits >= cuda::kTargetBlocks / 2);
  // [R, D] over D: rows, a group per row, no split (enough rows).
  p = plan({4096, 768}, {768, 1}, {1});
  CHECK_FALSE(p.columns);
  CHECK(p.red_x_stride[0] == 1);
  CHECK(p.splits == 1);
  // The transposed view [D, R] (strides [1, D]) over R is the same columns case.
  p = plan({512, 65536}, {1, 512}, {1});
  CHECK(p.columns);
  // Few outputs, many elements: [4, 100000] over dim 1 splits the rows.
  p = plan({4, 100000}, {100000, 1}, {1});
  CHECK_FALSE(p.columns);
  CHECK(p.splits > 1);
  // A sum of everything: no kept dim, one merged reduced dim, split.
  p = plan({3000, 1000}, {1000, 1}, {0, 1});
  CHECK(p.kept_ndim == 0);
  CHECK(p.red_ndim == 1);
  CHECK(p.n_red == 3000000);
  CHECK(p.splits > 1);
  // Short rows: [100000, 3] over dim 1 uses the columns kernel (a thread per output).
  p = plan({100000, 3}, {3, 1}, {1});
  CHECK(p.columns);
  // Merging: contiguous [2, 3, 4] over {1, 2} is one reduced dim, over {0, 2} two.
  CHECK(plan({2, 3, 4}, {12, 4, 1}, {1, 2}).red_ndim == 1);
  CHECK(plan({2, 3, 4}, {12, 4, 1}, {0, 2}).red_ndim == 2);
  CHECK(plan({2, 3, 4}, {12, 4, 1}, {2}).kept_ndim == 1);
  // Same shapes, same plan: nothing depends on the machine.
  ReducePlan a = plan({7, 300, 11}, {1, 77, 7}, {1}), b = plan({7, 300, 11}, {1, 77, 7}, {1});
  CHECK(a.splits == b.splits);
  CHECK(a.chunk == b.chunk);
  CHECK(a.block_x == b.block_x);
}

TEST_CASE("cuda reduce plan: too many unmergeable dims are refused", "[cuda][plan]") {
  // 20 kept dims of size 2 whose x strides never line up.
  Shape shape(20, 2), strides(20), out_strides(20);
  for (int d = 0; d < 20; ++d) {
    strides[d] = int64_t(1) << (2 * (19 - d));  // a step of each dim is two sweeps of the next
    out_strides[d] = int64_t(1) << (19 - d);
  }
  ReducePlan p;
  CHECK_FALSE(cuda::make_reduce_plan(20, shape.data(), strides.data(), shape.data(), out_strides.data(), p));
}

TEST_CASE("cuda row plans: group sizes and column-sum chunks", "[cuda][plan]") {
  for (int64_t rows : {1, 3, 8, 1000, 100000, 10000000}) {
    for (int64_t n : {1, 7, 32, 33, 128, 768, 4096, 50257}) {
      INFO("rows " << rows << " n " << n);
      const cuda::RowLaunch l = cuda::plan_rows(rows, n);
      CHECK(is_pow2(l.threads));
      CHECK(l.threads >= 32);
      CHECK(l.threads <= cuda::kMaxGroupThreads);
      CHECK(l.threads / 32 * l.rows_per_block <= 32);
      CHECK(l.threads * l.rows_per_block <= cuda::kMaxGroupThreads);  // the kernels' __launch_bounds__
      CHECK(l.blocks >= 1);
      CHECK(l.blocks <= cuda::kMaxGridX);
      const cuda::ColumnSumLaunch c = cuda::plan_column_sums(rows, n);
      CHECK(c.chunks >= 1);
      CHECK(c.chunks <= cuda::kMaxSplits);
      CHECK(c.chunks * c.rows_per_chunk >= rows);
      CHECK((c.chunks - 1) * c.rows_per_chunk < rows);  // no empty chunk
      CHECK(c.col_blocks * cuda::ColumnSumLaunch::kBlockX >= std::min<int64_t>(n, cuda::kMaxGridX * 32));
    }
  }
  // Short rows share a block, long ones get many threads.
  CHECK(cuda::plan_rows(1000, 64).threads == 32);
  CHECK(cuda::plan_rows(1000, 64).rows_per_block == 8);
  CHECK(cuda::plan_rows(1000, 50257).threads == 512);
}

namespace {

// The CPU's argmax/argmin (tensor/cpu/cpu_reduce.cpp): walk in order, keep
// the first extreme, the first NaN beats everything.
template <bool kMax>
int64_t cpu_arg(const std::vector<double>& v) {
  double best = v[0];
  int64_t at = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    const bool better = kMax ? v[i] > best : v[i] < best;
    if (better || (v[i] != v[i] && best == best)) {
      best = v[i];
      at = static_cast<int64_t>(i);
    }
  }
  return at;
}

// Folds v as a kernel would: `threads` interleaved threads step through
// their elements in order, then the threads' candidates meet in a tree of
// random shape.
template <bool kMax>
int64_t tree_arg(const std::vector<double>& v, int threads, std::mt19937& rng) {
  using C = cuda::ArgCandidate<double>;
  std::vector<C> part(static_cast<size_t>(threads), C{0, -1});
  for (size_t i = 0; i < v.size(); ++i) {
    C& c = part[i % threads];
    c = cuda::arg_merge<kMax>(c, C{v[i], static_cast<int64_t>(i)});
  }
  while (part.size() > 1) {
    const size_t k = std::uniform_int_distribution<size_t>(0, part.size() - 2)(rng);
    const bool swap = rng() & 1;
    C merged = swap ? cuda::arg_merge<kMax>(part[k + 1], part[k]) : cuda::arg_merge<kMax>(part[k], part[k + 1]);
    part[k] = merged;
    part.erase(part.begin() + static_cast<std::ptrdiff_t>(k) + 1);
  }
  return part[0].index;
}

}  // namespace

TEST_CASE("cuda arg_merge: any merge tree gives the CPU's first extreme, first NaN", "[cuda][plan]") {
  std::mt19937 rng(7);
  const double nan = std::nan("");
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 40);
    std::vector<double> v(static_cast<size_t>(n));
    const int nan_odds = trial % 3 == 0 ? 8 : 1000;  // a third of the rows have NaNs
    for (double& e : v) {
      const unsigned r = rng() % 1000;
      e = static_cast<int>(r) < 1000 / nan_odds ? nan : static_cast<double>(rng() % 5) - 2.0;  // many ties
      if (e == 0 && (rng() & 1)) e = -0.0;
    }
    const int threads = 1 + static_cast<int>(rng() % 9);
    INFO("trial " << trial);
    CHECK(tree_arg<true>(v, threads, rng) == cpu_arg<true>(v));
    CHECK(tree_arg<false>(v, threads, rng) == cpu_arg<false>(v));
  }
  // max_step / min_step: NaN sticks whichever side it comes from.
  CHECK(std::isnan(cuda::max_step(nan, 1.0)));
  CHECK(std::isnan(cuda::max_step(1.0, nan)));
  CHECK(std::isnan(cuda::min_step(nan, -1.0)));
  CHECK(std::isnan(cuda::min_step(-1.0, nan)));
  CHECK(cuda::max_step(1.0, 2.0) == 2.0);
  CHECK(cuda::min_step(1.0, 2.0) == 1.0);
}

// ---- the kernels on a GPU against the CPU's -----------------------------------------

namespace {

// |got - want| <= tol[i] element by element.
void require_within(const std::vector<double>& got, const std::vector<double>& want, const std::vector<double>& tol) {
  REQUIRE(got.size() == want.size());
  REQUIRE(tol.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i] << ", allowed " << tol[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= tol[i]);
  }
}

// The float64 agreement cuda/norm.cu promises for layer norm, as per-element
// bounds from the CPU's results: x, g [R, d], w [d] or empty (no affine
// part), the CPU's mean, rstd [R], y and gx [R, d], and the number of rows R.
struct LayerNormBounds {
  std::vector<double> y, mean, rstd, gx, gw, gb;
};
LayerNormBounds layer_norm_f64_bounds(const std::vector<double>& x, const std::vector<double>& g,
                                      const std::vector<double>& w, const std::vector<double>& mean,
                                      const std::vector<double>& rstd, const std::vector<double>& y,
                                      const std::vector<double>& gx, int64_t R, int64_t d) {
  const double u = std::ldexp(1.0, -53);
  const double k = double(d + 64) * u;
  auto w_at = [&](int64_t j) { return w.empty() ? 1.0 : w[j]; };
  double max_w = 0;
  for (int64_t j = 0; j < d; ++j) max_w = std::max(max_w, std::abs(w_at(j)));
  LayerNormBounds b;
  b.gw.assign(d, 0);
  b.gb.assign(d, 0);
  for (int64_t r = 0; r < R; ++r) {
    const double cond = 1 + std::abs(mean[r]) * rstd[r];
    double max_x = 0, max_y = 0, max_gx = 0, max_gw = 0;
    for (int64_t j = 0; j < d; ++j) {
      const int64_t i = r * d + j;
      max_x = std::max(max_x, std::abs(x[i]));
      max_y = std::max(max_y, std::abs(y[i]));
      max_gx = std::max(max_gx, std::abs(gx[i]));
      max_gw = std::max(max_gw, std::abs(g[i] * w_at(j)));
      const double xhat = (x[i] - mean[r]) * rstd[r];
      b.gw[j] += cond * std::abs(g[i]) * (1 + std::abs(xhat));
      b.gb[j] += std::abs(g[i]);
    }
    b.mean.push_back(k * max_x);
    b.rstd.push_back(k * rstd[r]);
    for (int64_t j = 0; j < d; ++j) {
      b.y.push_back(k * cond * (max_y + max_w));
      b.gx.push_back(k * cond * (max_gx + rstd[r] * max_gw));
    }
  }
  for (int64_t j = 0; j < d; ++j) {
    b.gw[j] *= double(d + R + 64) * u;
    b.gb[j] *= double(R + 64) * u;
  }
  return b;
}

}  // namespace

TEST_CASE("cuda reduce: every op, dtype and set of dims of a strided x matches the CPU", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  const Backend& cpu = backend(DeviceType::CPU);
  const Backend& gpu = backend(DeviceType::CUDA);
  const double nan = std::nan("");
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::Bool}) {
    // A [5, 3, 4] base seen as a permuted [3, 4, 5], with ties and (for floats) a NaN.
    Tensor base = host_tensor({5, 3, 4}, dtype, [&](int64_t i) {
      if (dtype == DType::Bool) return double((i * 7) % 3 == 0);
      if (is_floating(dtype) && i == 17) return nan;
      return double((i * 37) % 11) - (dtype == DType::UInt8 ? 0 : 5);
    });
    Tensor base_gpu = to_device(base, kCUDA);
    const Shape shape = {3, 4, 5}, strides = {4, 1, 12};
    Tensor x = make_view(base, shape, strides, 0), xg = make_view(base_gpu, shape, strides, 0);
    for (unsigned mask = 0; mask < 8; ++mask) {
      const Shape out_shape = reduced_shape(shape, mask);
      for (ReduceOp op : kReduceOps) {
        const bool arg = is_index_reduce(op);
        if (arg && reduced_dims(shape, mask) > 1) continue;
        INFO(dtype_name(dtype) << " mask " << mask << " op " << int(op));
        const DType od = arg ? DType::Int64 : dtype;
        Tensor want = empty(out_shape, od), got = empty(out_shape, od, kCUDA);
        cpu.reduce(op, x, want);
        gpu.reduce(op, xg, got);
        require_close(values_of(got), values_of(want), dtype == DType::Float32 ? 1e-6 : 1e-12);
      }
    }
  }
  // Large: a float32 sum of 3M elements, column sums of [65536, 70], a split argmax.
  for (auto [shape, reduced] : std::vector<std::pair<Shape, std::vector<int>>>{
           {{3000000}, {0}}, {{65536, 70}, {0}}, {{70, 65536}, {1}}, {{4, 300000}, {1}}, {{300000, 3}, {0}}}) {
    Tensor x = host_tensor(shape, DType::Float32, [](int64_t i) { return 1.0 + double((i * 7919) % 1000) * 1e-3; });
    Tensor xg = to_device(x, kCUDA);
    Shape out_shape = shape;
    for (int d : reduced) out_shape[d] = 1;
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::ArgMax}) {
      INFO(shape_str(shape) << " op " << int(op));
      const DType od = op == ReduceOp::ArgMax ? DType::Int64 : DType::Float32;
      Tensor want = empty(out_shape, od), got = empty(out_shape, od, kCUDA);
      cpu.reduce(op, x, want);
      gpu.reduce(op, xg, got);
      require_close(values_of(got), values_of(want), 1e-6);
      // Run to run, the same bits.
      Tensor again = empty(out_shape, od, kCUDA);
      gpu.reduce(op, xg, again);
      REQUIRE(values_of(again) == values_of(got));
    }
  }
}

TEST_CASE("cuda softmax and layer norm match the CPU, -inf rows give no NaN", "[cuda]") {
  HEED_SKIP_WITHOUT_GPU();
  const Backend& cpu = backend(DeviceType::CPU);
  const Backend& gpu = backend(DeviceType::CUDA);
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double tol = dtype == DType::Float32 ? 2e-6 : 1e-13;
    for (int64_t n : {1, 7, 33, 768, 5000}) {
      INFO(dtype_name(dtype) << " n " << n);
      Tensor x = host_tensor({5, n}, dtype, [&](int64_t i) {
        const int64_t r = i / n, j = i % n;
        if (r == 1) return -inf;
        if (r == 2 && j % 3 == 0) return -inf;
        if (r == 3) return 50.0 + double(j % 13);
        return std::sin(double(i)) * 4;
      });
      Tensor xg = to_device(x, kCUDA);
      for (bool log : {false, true}) {
        Tensor want = empty({5, n}, dtype), got = empty({5, n}, dtype, kCUDA);
        cpu.softmax(x, log, want);
        gpu.softmax(xg, log, got);
        require_close(values_of(got), values_of(want), tol);
        // The backward from the CPU's y, on both devices.
        Tensor g = host_tensor({5, n}, dtype, [](int64_t i) { return std::cos(double(i) * 0.7); });
        Tensor gx_want = empty({5, n}, dtype), gx_got = empty({5, n}, dtype, kCUDA);
        cpu.softmax_backward(g, want, log, gx_want);
        gpu.softmax_backward(to_device(g, kCUDA), to_device(want, kCUDA), log, gx_got);
        require_close(values_of(gx_got), values_of(gx_want), tol * 4);
      }
      // Layer norm forward and backward, with and without the affine part.
      Tensor w = host_tensor({n}, dtype, [](int64_t j) { return 0.5 + 0.01 * double(j % 50); });
      Tensor b = host_tensor({n}, dtype, [](int64_t j) { return 0.1 * double(j % 7) - 0.3; });
      Tensor g = host_tensor({5, n}, dtype, [](int64_t i) { return std::cos(double(i) * 0.7); });
      Tensor xf = host_tensor({5, n}, dtype, [&](int64_t i) { return std::sin(double(i)) * 4 + 1000.0 * (i / n); });
      Tensor wg = to_device(w, kCUDA), bg = to_device(b, kCUDA), gg = to_device(g, kCUDA), xfg = to_device(xf, kCUDA);
      for (bool affine : {false, true}) {
        INFO("affine " << affine);
        Tensor y = empty({5, n}, dtype), m = empty({5}, dtype), r = empty({5}, dtype);
        Tensor yg = empty({5, n}, dtype, kCUDA), mg = empty({5}, dtype, kCUDA), rg = empty({5}, dtype, kCUDA);
        cpu.layer_norm(xf, affine ? w : Tensor(), affine ? b : Tensor(), 1e-5, y, m, r);
        gpu.layer_norm(xfg, affine ? wg : Tensor(), affine ? bg : Tensor(), 1e-5, yg, mg, rg);
        Tensor gx = empty({5, n}, dtype), gw = empty({n}, dtype), gb = empty({n}, dtype);
        Tensor gxg = empty({5, n}, dtype, kCUDA), gwg = empty({n}, dtype, kCUDA), gbg = empty({n}, dtype, kCUDA);
        cpu.layer_norm_backward(g, xf, affine ? w : Tensor(), m, r, gx, affine ? gw : Tensor(), affine ? gb : Tensor());
        gpu.layer_norm_backward(gg, xfg, affine ? wg : Tensor(), mg, rg, gxg, affine ? gwg : Tensor(),
                                affine ? gbg : Tensor());
        if (dtype == DType::Float32) {
          require_close(values_of(yg), values_of(y), tol * 4);
          require_close(values_of(mg), values_of(m), tol);
          require_close(values_of(rg), values_of(r), tol);
          require_close(values_of(gxg), values_of(gx), tol * 8);
          if (affine) {
            require_close(values_of(gwg), values_of(gw), tol * 4);
            require_close(values_of(gbg), values_of(gb), tol * 4);
          }
        } else {
          // float64: exactly the bounds cuda/norm.cu promises, which grow with
          // the row's condition |mean| / std (rows 1 to 4 have means 1000 to 4000).
          const LayerNormBounds bound =
              layer_norm_f64_bounds(values_of(xf), values_of(g), affine ? values_of(w) : std::vector<double>(),
                                    values_of(m), values_of(r), values_of(y), values_of(gx), 5, n);
          require_within(values_of(yg), values_of(y), bound.y);
          require_within(values_of(mg), values_of(m), bound.mean);
          require_within(values_of(rg), values_of(r), bound.rstd);
          require_within(values_of(gxg), values_of(gx), bound.gx);
          if (affine) {
            require_within(values_of(gwg), values_of(gw), bound.gw);
            require_within(values_of(gbg), values_of(gb), bound.gb);
          }
        }
      }
    }
  }
  // grad_weight / grad_bias over many rows (split into chunks): the same bits every run.
  Tensor x = host_tensor({20000, 96}, DType::Float32, [](int64_t i) { return std::sin(double(i) * 0.01); });
  Tensor g = host_tensor({20000, 96}, DType::Float32, [](int64_t i) { return std::cos(double(i) * 0.03); });
  Tensor w = host_tensor({96}, DType::Float32, [](int64_t j) { return 1.0 + 0.01 * double(j); });
  Tensor m = empty({20000}), r = empty({20000}), y = empty({20000, 96});
  cpu.layer_norm(x, w, Tensor(), 1e-5, y, m, r);
  Tensor gw = empty({96}), gb = empty({96});
  cpu.layer_norm_backward(g, x, w, m, r, Tensor(), gw, gb);
  Tensor xg = to_device(x, kCUDA), gg = to_device(g, kCUDA), wg = to_device(w, kCUDA);
  Tensor mg = to_device(m, kCUDA), rg = to_device(r, kCUDA);
  Tensor gwg = empty({96}, DType::Float32, kCUDA), gbg = empty({96}, DType::Float32, kCUDA);
  gpu.layer_norm_backward(gg, xg, wg, mg, rg, Tensor(), gwg, gbg);
  require_close(values_of(gwg), values_of(gw), 1e-5);
  require_close(values_of(gbg), values_of(gb), 1e-5);
  const std::vector<double> first = values_of(gwg);
  gpu.layer_norm_backward(gg, xg, wg, mg, rg, Tensor(), gwg, gbg);
  REQUIRE(values_of(gwg) == first);
}
