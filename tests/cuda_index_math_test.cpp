// The per-element math of the CUDA indexing, Adam and random kernels
// (cuda/index_math.h, cuda/optim_math.h), run on the CPU: each kernel is a
// grid-stride loop around one of these functions, so calling the function for
// every element here and comparing with the CPU kernels checks the kernels'
// index math and arithmetic without a GPU. Comparisons are bit-exact: the CUDA
// kernels are meant to add, update and sample exactly as the CPU does.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "cuda/index_math.h"
#include "cuda/optim_math.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tests/test_devices.h"

using namespace heed;
using namespace heed::cuda;

namespace {

Tensor ids(std::vector<int64_t> v, const Shape& shape = {}) { return from_vector(v, shape); }

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = DType::Float32) {
  Generator gen(seed);
  return randn(shape, &gen, dtype);
}

// Entries in [0, size), from a fixed LCG.
Tensor random_ids(const Shape& shape, int64_t size, uint64_t seed) {
  std::vector<int64_t> v(static_cast<size_t>(numel_of(shape)));
  for (auto& e : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    e = static_cast<int64_t>((seed >> 33) % static_cast<uint64_t>(size));
  }
  return from_vector(v, shape);
}

Shape part(const Shape& s, int64_t begin, int64_t end) { return Shape(s.begin() + begin, s.begin() + end); }

template <class T>
const T* data_of(const Tensor& t) {
  return static_cast<const T*>(t.raw_data());
}

template <class T>
bool same_bits(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape()) return false;
  const Tensor g = contiguous(got), w = contiguous(want);
  return std::memcmp(g.raw_data(), w.raw_data(), static_cast<size_t>(g.numel()) * sizeof(T)) == 0;
}

// ---- the host side of cuda/index.cpp, with the kernels run as loops ----------

IndexSelectArgs index_select_args(const Tensor& x, int64_t dim, const Tensor& index) {
  IndexSelectArgs a;
  const Shape os = part(x.shape(), 0, dim), ost = part(x.strides(), 0, dim);
  const Shape is = part(x.shape(), dim + 1, x.dim()), ist = part(x.strides(), dim + 1, x.dim());
  REQUIRE(make_walk<1>(os, {&ost}, a.outer));
  REQUIRE(make_walk<1>(is, {&ist}, a.inner));
  a.n = index.numel();
  a.inner_numel = numel_of(is);
  a.size = x.shape()[dim];
  a.x_step = x.strides()[dim];
  a.index_step = index.dim() == 0 ? 0 : index.strides()[0];
  return a;
}

Tensor sim_index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  Shape shape = x.shape();
  shape[dim] = index.numel();
  Tensor out = empty(shape, x.dtype());
  const IndexSelectArgs a = index_select_args(x, dim, index);
  float* o = static_cast<float*>(out.raw_data());
  for (int64_t e = 0; e < out.numel(); ++e) {
    int64_t at = -1, bad = -1;
    REQUIRE(index_select_source(a, data_of<int64_t>(index), e, &at, &bad));
    o[e] = data_of<float>(x)[at];
  }
  return out;
}

Tensor sim_gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = empty(index.shape(), x.dtype());
  GatherArgs a;
  Shape xs = x.strides();
  xs[dim] = 0;
  REQUIRE(make_walk<2>(out.shape(), {&xs, &index.strides()}, a.walk));
  a.size = x.shape()[dim];
  a.x_step = x.strides()[dim];
  float* o = static_cast<float*>(out.raw_data());
  for (int64_t e = 0; e < out.numel(); ++e) {
    int64_t at = -1;
    REQUIRE(gather_source(a, data_of<int64_t>(index), e, &at));
    o[e] = data_of<float>(x)[at];
  }
  return out;
}

// dst (contiguous, updated in place) as cuda/index.cpp's scatter_add does it.
void sim_scatter_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  Shape lines, dl, sl, il;
  for (int64_t d = 0; d < index.dim(); ++d) {
    if (d == dim) continue;
    lines.push_back(index.shape()[d]);
    dl.push_back(dst.strides()[d]);
    sl.push_back(src.strides()[d]);
    il.push_back(index.strides()[d]);
  }
  ScatterAddArgs a;
  REQUIRE(make_walk<3>(lines, {&dl, &sl, &il}, a.lines));
  a.n = index.shape()[dim];
  a.dst_step = dst.strides()[dim];
  a.src_step = src.strides()[dim];
  a.index_step = index.strides()[dim];
  for (int64_t line = 0; line < numel_of(lines); ++line)
    scatter_add_line(a, static_cast<float*>(dst.raw_data()), data_of<float>(src), data_of<int64_t>(index), line);
}

// index_add into contiguous dst, with the radix sort replaced by a stable sort.
template <class T>
void sim_index_add(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t n = index.numel();
  std::vector<uint64_t> keys(n);
  std::vector<int64_t> order(n);
  IndexCheckArgs check{};
  REQUIRE(make_walk<1>(index.shape(), {&index.strides()}, check.walk));
  check.size = dst.shape()[dim];
  for (int64_t p = 0; p < n; ++p) {
    int64_t v = -1;
    REQUIRE(check_index_entry(check, data_of<int64_t>(index), p, &v));
    keys[p] = static_cast<uint64_t>(v);
    order[p] = p;
  }
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t p, int64_t q) { return keys[p] < keys[q]; });
  std::vector<uint64_t> sorted_keys(n);
  std::vector<int64_t> sorted_order(n);
  for (int64_t k = 0; k < n; ++k) {
    sorted_keys[k] = keys[perm[k]];
    sorted_order[k] = order[perm[k]];
  }
  IndexAddArgs a;
  const Shape os = part(src.shape(), 0, dim), ost = part(src.strides(), 0, dim);
  const Shape is = part(src.shape(), dim + 1, src.dim()), ist = part(src.strides(), dim + 1, src.dim());
  REQUIRE(make_walk<1>(os, {&ost}, a.outer));
  REQUIRE(make_walk<1>(is, {&ist}, a.inner));
  a.n = n;
  a.inner_numel = numel_of(is);
  a.size = dst.shape()[dim];
  a.src_step = src.strides()[dim];
  for (int64_t t = 0; t < src.numel(); ++t)
    index_add_run(a, static_cast<T*>(dst.raw_data()), data_of<T>(src), sorted_keys.data(), sorted_order.data(), t);
}

}  // namespace

TEST_CASE("cuda index math: a walk keeps row-major order and merges only what is contiguous in every operand",
          "[cuda][index]") {
  StridedWalk<2> w;
  // contiguous [2, 3, 4] twice: one flat dim
  const Shape shape{2, 3, 4}, dense{12, 4, 1};
  REQUIRE(make_walk<2>(shape, {&dense, &dense}, w));
  CHECK(w.ndim == 1);
  CHECK(w.size[0] == 24);
  // the second operand transposed in its last two dims: nothing merges
  const Shape trans{12, 1, 3};
  REQUIRE(make_walk<2>(shape, {&dense, &trans}, w));
  CHECK(w.ndim == 3);
  int64_t off[2];
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        w.at((i * 3 + j) * 4 + k, off);
        CHECK(off[0] == i * 12 + j * 4 + k);
        CHECK(off[1] == i * 12 + j * 1 + k * 3);
      }
  // size-1 dims vanish whatever their stride; stride-0 (expanded) dims stay
  const Shape s2{3, 1, 5}, st{0, 99, 1};
  StridedWalk<1> w1;
  REQUIRE(make_walk<1>(s2, {&st}, w1));
  CHECK(w1.ndim == 2);
  w1.at(7, off);
  CHECK(off[0] == 2);
  // a scalar: no dims, offset 0
  const Shape none{};
  REQUIRE(make_walk<1>(none, {&none}, w1));
  CHECK(w1.ndim == 0);
  w1.at(0, off);
  CHECK(off[0] == 0);
  // more dims than kMaxIndexDims that cannot merge
  const Shape many(kMaxIndexDims + 1, 2);
  Shape strides(kMaxIndexDims + 1);
  for (size_t d = 0; d < strides.size(); ++d) strides[d] = int64_t(1) << (2 * (strides.size() - d));  // gaps
  CHECK_FALSE(make_walk<1>(many, {&strides}, w1));
}

TEST_CASE("cuda index math: index_select reads what the CPU kernel reads, strided x included", "[cuda][index]") {
  Tensor base = rnd({5, 6, 4}, 1);
  const std::vector<Tensor> xs{base, transpose(base, 0, 2), slice(base, 1, 1, 6, 2), expand(rnd({5, 1, 4}, 2), {5, 6, 4})};
  Tensor index = ids({2, 0, 2, 1});
  Tensor strided_index = slice(ids({2, 9, 0, 9, 2, 9, 1, 9}), 0, 0, 8, 2);
  for (const Tensor& x : xs)
    for (int64_t dim = 0; dim < x.dim(); ++dim)
      for (const Tensor& idx : {index, strided_index}) {
        CAPTURE(x.shape(), x.strides(), dim);
        CHECK(same_bits<float>(sim_index_select(x, dim, idx), index_select(x, dim, idx)));
      }
  // a bad entry: reported by position, x not read
  const IndexSelectArgs a = index_select_args(base, 1, ids({2, 6, 1}));
  const std::vector<int64_t> bad_index{2, 6, 1};
  int64_t at = -1, bad = -1;
  CHECK(index_select_source(a, bad_index.data(), 0, &at, &bad));
  CHECK_FALSE(index_select_source(a, bad_index.data(), 4 + 1, &at, &bad));  // out [0, 1, 1]: entry 1
  CHECK(bad == 1);
  const std::vector<int64_t> negative{2, -1, 1};
  CHECK_FALSE(index_select_source(a, negative.data(), 4, &at, &bad));
}

TEST_CASE("cuda index math: gather reads what the CPU kernel reads, strided x and index included", "[cuda][index]") {
  Tensor x = rnd({4, 5, 3}, 3);
  for (int64_t dim = 0; dim < 3; ++dim) {
    Tensor index = random_ids({3, 4, 2}, x.shape()[dim], 4 + dim);
    Tensor index_t = transpose(contiguous(transpose(index, 0, 2)), 0, 2);  // same values, strided
    Tensor index_e = expand(select(index, 2, 0).unsqueeze(2), {3, 4, 2});  // stride 0
    for (const Tensor& xi : {x, transpose(contiguous(transpose(x, 0, 1)), 0, 1)})
      for (const Tensor& idx : {index, index_t, index_e}) {
        CAPTURE(dim, idx.strides(), xi.strides());
        CHECK(same_bits<float>(sim_gather(xi, dim, idx), gather(xi, dim, idx)));
      }
  }
}

TEST_CASE("cuda index math: scatter_add adds duplicates in the CPU's order, bit for bit", "[cuda][index]") {
  // Values of very different magnitude make the order of additions visible.
  Tensor src = mul(rnd({6, 5}, 5), exp(mul(rnd({6, 5}, 6), 8.0)));
  const Tensor index = ids({0, 2, 2, 1, 0, 1, 1, 1, 3, 3, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 1, 3, 1, 3, 1, 0, 0, 1, 1, 0},
                           {6, 5});
  for (int64_t dim = 0; dim < 2; ++dim) {
    Shape dshape{6, 5};
    dshape[dim] = 4;
    Tensor idx = dim == 0 ? slice(index, 0, 0, 6) : index;
    Tensor start = rnd(dshape, 7);
    for (const Tensor& s : {src, transpose(contiguous(transpose(src, 0, 1)), 0, 1)}) {
      CAPTURE(dim, s.strides());
      Tensor got = clone(start);
      sim_scatter_add(got, dim, idx, s);
      CHECK(same_bits<float>(got, scatter_add(start, dim, idx, s)));
    }
  }
  // index smaller than src (only its part is scattered)
  Tensor got = zeros({3, 5});
  Tensor small_index = ids({2, 0, 1, 1, 2, 0}, {2, 3});
  sim_scatter_add(got, 0, small_index, src);
  CHECK(same_bits<float>(got, scatter_add(zeros({3, 5}), 0, small_index, src)));
}

TEST_CASE("cuda index math: index_add sums each destination's sources in the CPU's order, bit for bit",
          "[cuda][index]") {
  // The embedding backward: many tokens, few distinct, rows of D.
  const int64_t n = 300, vocab = 7, d = 6;
  Tensor tokens = random_ids({n}, vocab, 8);
  Tensor grad = mul(rnd({n, d}, 9), exp(mul(rnd({n, d}, 10), 6.0)));
  Tensor start = rnd({vocab, d}, 11);
  Tensor got = clone(start);
  sim_index_add<float>(got, 0, tokens, grad);
  CHECK(same_bits<float>(got, index_add(start, 0, tokens, grad)));

  // along dim 1 of a 3-d tensor, src transposed, index strided
  Tensor src = transpose(contiguous(transpose(rnd({2, 5, 3}, 12), 0, 2)), 0, 2);
  Tensor idx = slice(ids({1, 9, 3, 9, 1, 9, 1, 9, 0, 9}), 0, 0, 10, 2);
  Tensor dst = rnd({2, 4, 3}, 13);
  Tensor got2 = clone(dst);
  sim_index_add<float>(got2, 1, idx, src);
  CHECK(same_bits<float>(got2, index_add(dst, 1, idx, src)));

  // int64 sums wrap as on the CPU
  Tensor big = from_vector<int64_t>({INT64_MAX, 5, 7}, {3, 1});
  Tensor dst64 = from_vector<int64_t>({1, 2}, {2, 1});
  Tensor got3 = clone(dst64);
  sim_index_add<int64_t>(got3, 0, ids({0, 1, 0}), big);
  CHECK(same_bits<int64_t>(got3, index_add(dst64, 0, ids({0, 1, 0}), big)));
}

TEST_CASE("cuda index math: the radix sort looks at enough bits for every key", "[cuda][index]") {
  CHECK(key_bits(1) == 1);
  CHECK(key_bits(2) == 1);
  CHECK(key_bits(3) == 2);
  CHECK(key_bits(4) == 2);
  CHECK(key_bits(5) == 3);
  CHECK(key_bits(50257) == 16);
  CHECK(key_bits(65536) == 16);
  CHECK(key_bits(65537) == 17);
  for (int64_t size : {1, 2, 3, 7, 8, 9, 1000, 1 << 20})
    CHECK((uint64_t(size - 1) >> key_bits(size)) == 0);
}

TEST_CASE("cuda optim math: adam_element is the CPU's adam_step bit for bit", "[cuda][optim]") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (int variant = 0; variant < 4; ++variant) {
      AdamStepArgs args{};
      args.lr = 3e-3;
      args.beta1 = 0.9;
      args.beta2 = 0.999;
      args.eps = 1e-8;
      args.weight_decay = variant == 1 ? 0.05 : 0.0;
      args.decoupled_weight_decay = variant >= 2 ? 0.01 : 0.0;
      args.bias_correction1 = 1 - 0.9 * 0.9 * 0.9;
      args.bias_correction2_sqrt = std::sqrt(1 - 0.999 * 0.999 * 0.999);
      args.maximize = variant == 3;
      CAPTURE(dtype_name(dtype), variant);
      const Shape shape{257};
      Tensor p = rnd(shape, 20, dtype), g = rnd(shape, 21, dtype), m = mul(rnd(shape, 22, dtype), 0.1),
             v = abs(mul(rnd(shape, 23, dtype), 0.01));
      Tensor p2 = clone(p), m2 = clone(m), v2 = clone(v);
      backend(kCPU).adam_step(p, g, m, v, args);
      dispatch_floating(dtype, "test", [&](auto zero) {
        using T = decltype(zero);
        const AdamScalars<T> s =
            make_adam_scalars<T>(args);
        for (int64_t i = 0; i < p2.numel(); ++i)
          adam_element(s, static_cast<T*>(p2.raw_data()), data_of<T>(g), static_cast<T*>(m2.raw_data()),
                       static_cast<T*>(v2.raw_data()), i);
        CHECK(same_bits<T>(p2, p));
        CHECK(same_bits<T>(m2, m));
        CHECK(same_bits<T>(v2, v));
      });
    }
  }
}

TEST_CASE("cuda optim math: random_block gives the CPU's samples for every distribution and dtype",
          "[cuda][random]") {
  const uint64_t seed = 0x1234abcd5678ull, offset = 77;
  for (int64_t n : {1, 2, 3, 5, 1001}) {
    CAPTURE(n);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (RandomDist dist : {RandomDist::Uniform, RandomDist::Normal}) {
        CAPTURE(dtype_name(dtype), static_cast<int>(dist));
        Tensor want = empty({n}, dtype), got = empty({n}, dtype);
        backend(kCPU).random(dist, -1.5, 2.5, seed, offset, want);
        dispatch_floating(dtype, "test", [&](auto zero) {
          using T = decltype(zero);
          T* out = static_cast<T*>(got.raw_data());
          const int words = philox_words(dist == RandomDist::Normal, sizeof(T) == 8);
          for (int64_t b = 0; b < random_blocks(n, words); ++b) {
            if (dist == RandomDist::Uniform)
              random_block(out, n, seed, offset, words, b, UniformSampler<T>{T(-1.5), T(2.5)});
            else
              random_block(out, n, seed, offset, words, b, NormalSampler<T>{T(-1.5), T(2.5)});
          }
          CHECK(same_bits<T>(got, want));
        });
      }
    }
    for (DType dtype : {DType::Float32, DType::Bool, DType::Int64, DType::UInt8, DType::Float64}) {
      CAPTURE(dtype_name(dtype));
      Tensor want = empty({n}, dtype), got = empty({n}, dtype);
      backend(kCPU).random(RandomDist::Bernoulli, 0.3, 0, seed, offset, want);
      dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        for (int64_t b = 0; b < random_blocks(n, 1); ++b)
          random_block(static_cast<T*>(got.raw_data()), n, seed, offset, 1, b, BernoulliSampler<T>{0.3});
        CHECK(same_bits<T>(got, want));
      });
    }
  }
}

// ---- on a GPU: the kernels themselves against the CPU -------------------------

namespace {

Tensor on_gpu(const Tensor& t) { return t.to(kCUDA); }
Tensor on_cpu(const Tensor& t) { return t.to(kCPU); }

}  // namespace

TEST_CASE("cuda index kernels: the same results as the CPU, bit for bit, strided inputs included",
          "[cuda][index][device]") {
  HEED_SKIP_WITHOUT_GPU();
  const Tensor x = rnd({5, 6, 4}, 30);
  const Tensor xt = transpose(x, 0, 2);  // [4, 6, 5], strided
  const Tensor idx = ids({2, 0, 2, 1, 3});
  for (int64_t dim = 0; dim < 3; ++dim) {
    CAPTURE(dim);
    CHECK(same_bits<float>(on_cpu(index_select(transpose(on_gpu(x), 0, 2), dim, on_gpu(idx))),
                           index_select(xt, dim, idx)));
    const Tensor g = random_ids({3, 4, 2}, xt.shape()[dim], 31 + dim);
    CHECK(same_bits<float>(on_cpu(gather(transpose(on_gpu(x), 0, 2), dim, on_gpu(g))), gather(xt, dim, g)));
  }
  // other dtypes move as bytes
  const Tensor xi = from_vector<int64_t>({1, -2, 3, -4, 5, -6}, {3, 2});
  CHECK(same_bits<int64_t>(on_cpu(index_select(on_gpu(xi), 0, on_gpu(ids({2, 2, 0})))),
                           index_select(xi, 0, ids({2, 2, 0}))));
  const Tensor xb = from_vector<uint8_t>({1, 0, 1, 1, 0, 0}, {3, 2});
  CHECK(same_bits<uint8_t>(on_cpu(gather(on_gpu(xb), 1, on_gpu(ids({1, 0, 0, 0, 1, 1}, {3, 2})))),
                           gather(xb, 1, ids({1, 0, 0, 0, 1, 1}, {3, 2}))));

  // scatter_add with duplicates, src transposed on the device
  const Tensor src = mul(rnd({5, 6}, 32), exp(mul(rnd({5, 6}, 33), 8.0)));
  const Tensor sidx = random_ids({6, 5}, 3, 34);
  const Tensor start = rnd({3, 5}, 35);
  CHECK(same_bits<float>(on_cpu(scatter_add(on_gpu(start), 0, on_gpu(sidx), transpose(on_gpu(src), 0, 1))),
                         scatter_add(start, 0, sidx, transpose(src, 0, 1))));

  // the embedding backward: many duplicates, summed in token order
  const int64_t n = 4000, vocab = 37, d = 64;
  const Tensor tokens = random_ids({n}, vocab, 36);
  const Tensor grad = mul(rnd({n, d}, 37), exp(mul(rnd({n, d}, 38), 6.0)));
  const Tensor table = zeros({vocab, d});
  const Tensor want = index_add(table, 0, tokens, grad);
  for (int run = 0; run < 3; ++run)  // and the same bits every run
    CHECK(same_bits<float>(on_cpu(index_add(on_gpu(table), 0, on_gpu(tokens), on_gpu(grad))), want));
  // along dim 1, double
  const Tensor src64 = rnd({3, 50, 2}, 39, DType::Float64);
  const Tensor idx64 = random_ids({50}, 4, 40);
  CHECK(same_bits<double>(on_cpu(index_add(on_gpu(zeros({3, 4, 2}, DType::Float64)), 1, on_gpu(idx64),
                                           on_gpu(src64))),
                          index_add(zeros({3, 4, 2}, DType::Float64), 1, idx64, src64)));
}

TEST_CASE("cuda index kernels: a bad index throws the CPU's message and leaves dst alone", "[cuda][index][device]") {
  HEED_SKIP_WITHOUT_GPU();
  using Catch::Matchers::Contains;
  const Tensor w = on_gpu(rnd({4, 3}, 41));
  REQUIRE_THROWS_WITH(index_select(w, 0, on_gpu(ids({1, 7, 9}))),
                      Contains("index_select") && Contains("index 7 ") && Contains("dim 0 of size 4"));
  REQUIRE_THROWS_WITH(index_select(w, 1, on_gpu(ids({-1}))), Contains("index -1 ") && Contains("dim 1 of size 3"));
  REQUIRE_THROWS_WITH(gather(w, 1, on_gpu(ids({0, 1, 2, 0, 1, 3, 0, 0}, {4, 2}))),
                      Contains("gather") && Contains("index 3 ") && Contains("dim 1 of size 3"));
  const Backend& cuda = backend(kCUDA);
  const Tensor dst = on_gpu(ones({4, 3}));
  REQUIRE_THROWS_WITH(cuda.scatter_add(dst, 0, on_gpu(ids({0, 4, 1}, {1, 3})), on_gpu(ones({1, 3}))),
                      Contains("scatter_add") && Contains("index 4 "));
  REQUIRE_THROWS_WITH(cuda.index_add(dst, 0, on_gpu(ids({0, 5})), on_gpu(ones({2, 3}))),
                      Contains("index_add") && Contains("index 5 "));
  CHECK(same_bits<float>(on_cpu(dst), ones({4, 3})));  // untouched by the failed calls
  // and the device is still usable
  CHECK(same_bits<float>(on_cpu(index_select(w, 0, on_gpu(ids({3})))), index_select(on_cpu(w), 0, ids({3}))));
}

TEST_CASE("cuda adam_step and random: the CPU's numbers from the same step and seed", "[cuda][optim][device]") {
  HEED_SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    AdamStepArgs args{};
    args.lr = 1e-3;
    args.beta1 = 0.9;
    args.beta2 = 0.98;
    args.eps = 1e-9;
    args.decoupled_weight_decay = 0.01;
    args.bias_correction1 = 1 - 0.9 * 0.9;
    args.bias_correction2_sqrt = std::sqrt(1 - 0.98 * 0.98);
    const Shape shape{1000, 3};
    const Tensor p = rnd(shape, 42, dtype), g = rnd(shape, 43, dtype), m = mul(rnd(shape, 44, dtype), 0.1),
                 v = abs(mul(rnd(shape, 45, dtype), 0.01));
    const Tensor pd = on_gpu(p), gd = on_gpu(g), md = on_gpu(m), vd = on_gpu(v);
    adam_step_(p, g, m, v, args);
    adam_step_(pd, gd, md, vd, args);
    dispatch_floating(dtype, "test", [&](auto zero) {
      using T = decltype(zero);
      CHECK(same_bits<T>(on_cpu(pd), p));
      CHECK(same_bits<T>(on_cpu(md), m));
      CHECK(same_bits<T>(on_cpu(vd), v));
    });

    Generator a(7), b(7);
    dispatch_floating(dtype, "test", [&](auto zero) {
      using T = decltype(zero);
      CHECK(same_bits<T>(on_cpu(uniform({1001}, -2, 3, &a, dtype, kCUDA)), uniform({1001}, -2, 3, &b, dtype)));
      CHECK(same_bits<T>(on_cpu(bernoulli({999}, 0.25, &a, dtype, kCUDA)), bernoulli({999}, 0.25, &b, dtype)));
      // normal: the device's log/cos may round an ulp or two differently
      const std::vector<T> got = on_cpu(normal({1001}, 1, 2, &a, dtype, kCUDA)).template to_vector<T>();
      const std::vector<T> want = normal({1001}, 1, 2, &b, dtype).template to_vector<T>();
      const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
      for (size_t i = 0; i < got.size(); ++i) REQUIRE(double(got[i]) == Approx(double(want[i])).margin(tol));
    });
    CHECK(a.offset() == b.offset());
  }
  Generator a(9), b(9);
  CHECK(same_bits<bool>(on_cpu(bernoulli({77}, 0.5, &a, DType::Bool, kCUDA)), bernoulli({77}, 0.5, &b, DType::Bool)));
}
