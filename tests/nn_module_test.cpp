// Module: registration, dotted names, train/eval, zero_grad, apply, to().
#include <catch2/catch.hpp>

#include <heed.h>
#include "nn/module.h"

using namespace heed;
using Catch::Contains;

namespace {
struct Affine : nn::Module {
  Tensor& weight;
  Tensor& bias;
  Tensor& steps;
  explicit Affine(int64_t n)
      : nn::Module("Affine"),
        weight(register_parameter("weight", ones({n}))),
        bias(register_parameter("bias", zeros({n}))),
        steps(register_buffer("steps", zeros({}, DType::Int64))) {}
  Tensor forward(const Tensor& x) const { return add(mul(x, weight), bias); }
};

struct Stack : nn::Module {
  std::shared_ptr<Affine> first, second;
  Stack() : nn::Module("Stack") {
    first = register_module("first", std::make_shared<Affine>(3));
    second = register_module("second", std::make_shared<Affine>(3));
  }
};
}  // namespace

TEST_CASE("modules name their parameters with dotted paths", "[nn][module]") {
  Stack s;
  auto names = s.named_parameters();
  REQUIRE(names.size() == 4);
  REQUIRE(names[0].first == "first.weight");
  REQUIRE(names[3].first == "second.bias");
  REQUIRE(s.named_buffers()[1].first == "second.steps");
  REQUIRE(s.num_parameters() == 12);
  REQUIRE(s.named_parameters(false).empty());
  auto modules = s.named_modules();
  REQUIRE(modules.size() == 3);
  REQUIRE(modules[1].first == "first");
  for (const Tensor& p : s.parameters()) REQUIRE(p.requires_grad());
}

TEST_CASE("train/eval recurse; zero_grad clears; apply visits every module", "[nn][module]") {
  Stack s;
  s.eval();
  REQUIRE_FALSE(s.first->is_training());
  s.train();
  REQUIRE(s.second->is_training());
  sum(s.second->forward(ones({3}))).backward();
  REQUIRE(s.second->weight.grad().defined());
  s.zero_grad();
  REQUIRE_FALSE(s.second->weight.grad().defined());
  int visited = 0;
  s.apply([&](const std::string&, nn::Module&) { ++visited; });
  REQUIRE(visited == 3);
}

TEST_CASE("to(dtype) keeps the module's handles valid", "[nn][module]") {
  Stack s;
  Tensor handle = s.first->weight;
  s.to(DType::Float64);
  REQUIRE(handle.dtype() == DType::Float64);
  REQUIRE(s.named_parameters()[0].second.dtype() == DType::Float64);
  REQUIRE(s.first->steps.dtype() == DType::Int64);  // integer buffers stay
  REQUIRE(s.first->weight.requires_grad());
}

TEST_CASE("registration errors name the module and the name", "[nn][module]") {
  struct Bad : nn::Module {
    Bad() : nn::Module("Bad") {}
    void twice() {
      register_parameter("w", zeros({1}));
      register_parameter("w", zeros({1}));
    }
    void dotted() { register_buffer("a.b", zeros({1})); }
    void integer() { register_parameter("ids", zeros({1}, DType::Int64)); }
  };
  Bad b;
  REQUIRE_THROWS_WITH(b.twice(), Contains("Bad") && Contains("'w' is already registered"));
  REQUIRE_THROWS_WITH(b.dotted(), Contains("invalid name 'a.b'"));
  REQUIRE_THROWS_WITH(b.integer(), Contains("must be a float dtype"));
}
