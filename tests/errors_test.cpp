// Bad input gets a heed::Error whose message names the op and what was
// wrong, never a crash or an out-of-bounds read.
#include <catch2/catch.hpp>

#include <heed.h>

using namespace heed;
using Catch::Contains;

namespace {
Tensor ids(std::vector<int64_t> v) { return from_vector(v); }
}  // namespace

TEST_CASE("shape mismatches name the op and both shapes", "[errors]") {
  REQUIRE_THROWS_AS(add(zeros({2, 3}), zeros({4})), Error);
  REQUIRE_THROWS_WITH(add(zeros({2, 3}), zeros({4})), Contains("add") && Contains("[2, 3]") && Contains("[4]"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 3}), zeros({4, 5})), Contains("matmul") && Contains("inner dimensions"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 2, 3}), zeros({3, 3, 1})), Contains("matmul"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).view({4, 2}), Contains("view") && Contains("[4, 2]"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).t().view({6}), Contains("reshape()"));
  REQUIRE_THROWS_WITH(zeros({6}).reshape({-1, -1}), Contains("only one dimension can be -1"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).expand({2, 4}), Contains("expand"));
  REQUIRE_THROWS_WITH(cat({zeros({2, 3}), zeros({3, 2})}, 0), Contains("cat") && Contains("[3, 2]"));
  REQUIRE_THROWS_WITH(stack({zeros({2}), zeros({3})}), Contains("stack"));
  REQUIRE_THROWS_WITH(masked_fill(zeros({2}), zeros({3}, DType::Bool), 0), Contains("masked_fill"));
  REQUIRE_THROWS_WITH(tensor({1, 2, 3}, {2, 2}), Contains("from_vector"));
  REQUIRE_THROWS_WITH(zeros({-1}), Contains("negative"));
  REQUIRE_THROWS_WITH(zeros({3}).item<float>(), Contains("item") && Contains("3 elements"));
}

TEST_CASE("bad dims are reported with the valid range", "[errors]") {
  REQUIRE_THROWS_WITH(sum(zeros({2, 3}), {2}), Contains("sum") && Contains("dim 2 is out of range"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).transpose(0, 5), Contains("transpose"));
  REQUIRE_THROWS_WITH(softmax(zeros({2, 3}), -3), Contains("softmax"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).permute({0, 0}), Contains("permute") && Contains("repeats"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).narrow(1, 2, 2), Contains("narrow"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).select(0, 2), Contains("select") && Contains("index 2"));
  REQUIRE_THROWS_WITH(zeros({2, 3}).slice(0, 0, 1, 0), Contains("step"));
  REQUIRE_THROWS_WITH(sum(zeros({2, 3}), {1, 1}), Contains("repeats"));
}

TEST_CASE("out-of-range indices never read out of bounds", "[errors]") {
  Tensor w = zeros({5, 2});
  REQUIRE_THROWS_WITH(embedding(w, ids({0, 5})), Contains("embedding") && Contains("[0, 5)"));
  REQUIRE_THROWS_WITH(embedding(w, ids({-1})), Contains("embedding"));
  REQUIRE_THROWS_WITH(index_select(w, 0, ids({7})), Contains("index_select") && Contains("7"));
  REQUIRE_THROWS_WITH(index_select(w, 0, ids({-1})), Contains("index_select"));
  REQUIRE_THROWS_WITH(gather(w, 1, from_vector(std::vector<int64_t>{0, 2}, {1, 2})), Contains("gather"));
  REQUIRE_THROWS_WITH(scatter_add(w, 0, from_vector(std::vector<int64_t>{9}, {1, 1}), ones({1, 1})),
                      Contains("scatter_add"));
  REQUIRE_THROWS_WITH(index_add(w, 0, ids({5}), ones({1, 2})), Contains("index_add"));
  REQUIRE_THROWS_WITH(one_hot(ids({3}), 3), Contains("one_hot"));
}

TEST_CASE("dtype mismatches are errors, not silent promotions", "[errors]") {
  Tensor f = zeros({2}), d = zeros({2}, DType::Float64), i = zeros({2}, DType::Int64);
  REQUIRE_THROWS_WITH(add(f, d), Contains("add") && Contains("float32") && Contains("float64"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 2}, DType::Int64), zeros({2, 2}, DType::Int64)), Contains("matmul"));
  REQUIRE_THROWS_WITH(exp(i), Contains("exp") && Contains("int64"));
  REQUIRE_THROWS_WITH(embedding(f.reshape({2, 1}), f), Contains("ids must be int64"));
  REQUIRE_THROWS_WITH(index_select(f, 0, f), Contains("index must be int64"));
  REQUIRE_THROWS_WITH(where(f, f, f), Contains("condition must be bool"));
  REQUIRE_THROWS_WITH(masked_fill(f, f, 1.0), Contains("mask must be bool"));
  REQUIRE_THROWS_WITH(add(zeros({2}, DType::Bool), zeros({2}, DType::Bool)), Contains("bool"));
  REQUIRE_THROWS_WITH(i.requires_grad_(), Contains("only float tensors"));
  REQUIRE_THROWS_WITH(f.data_ptr<double>(), Contains("data_ptr"));
  REQUIRE_THROWS_WITH(rand({2}, nullptr, DType::Int64), Contains("uniform"));
}

TEST_CASE("device problems are named", "[errors]") {
  REQUIRE_THROWS_WITH(Device::parse("gpu"), Contains("unknown device 'gpu'"));
  REQUIRE(Device::parse("cuda:1") == Device(DeviceType::CUDA, 1));
  bool cuda = cuda_is_available();
  if (!cuda) {
    // Without a GPU the request fails clearly instead of crashing.
    REQUIRE_THROWS_AS(zeros({2}, DType::Float32, kCUDA), Error);
    return;
  }
  Tensor g = zeros({2}, DType::Float32, kCUDA);
  REQUIRE_THROWS_WITH(add(zeros({2}), g), Contains("different devices") && Contains("cpu") && Contains("cuda:0"));
}

TEST_CASE("undefined tensors are reported, not dereferenced", "[errors]") {
  Tensor u;
  REQUIRE_FALSE(u.defined());
  REQUIRE_THROWS_WITH(u.shape(), Contains("undefined"));
  REQUIRE_THROWS_WITH(add(u, zeros({1})), Contains("add") && Contains("undefined"));
  REQUIRE_THROWS_WITH(sum(u), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.mutable_grad(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.set_grad(Tensor()), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.backward(), Contains("undefined"));
}
