// FeedForward, transformer encoder/decoder layers and stacks, GPT.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <heed.h>

using namespace heed;
using Catch::Contains;

namespace {
std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(n);
  return out;
}
double max_diff(const Tensor& a, const Tensor& b) { return amax(abs(sub(a, b))).item<double>(); }
}  // namespace

TEST_CASE("FeedForward is linear2(act(linear1(x)))", "[transformer]") {
  Generator g(1);
  nn::FeedForward ff({4, 8, nn::Activation::GELU}, &g);
  Tensor x = randn({2, 3, 4}, &g);
  REQUIRE(max_diff(ff.forward(x), ff.linear2->forward(gelu(ff.linear1->forward(x)))) == 0.0);
  REQUIRE(names_of(ff) == std::vector<std::string>{"linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"});
  REQUIRE_THROWS_WITH(ff.forward(zeros({2, 5})), Contains("FeedForward: expected input [..., 4] (d_model), got shape [2, 5]"));
  REQUIRE(nn::parse_activation("relu") == nn::Activation::ReLU);
  REQUIRE_THROWS_WITH(nn::parse_activation("swish"), Contains("unknown activation \"swish\""));
}

TEST_CASE("Transformer layers have PyTorch's parameter names", "[transformer]") {
  nn::TransformerLayerOptions o{8, 2, 16};
  nn::TransformerEncoderLayer enc(o);
  auto proj = [](const std::string& p) {
    std::vector<std::string> v;
    for (const char* x : {"q_proj", "k_proj", "v_proj", "out_proj"})
      for (const char* w : {"weight", "bias"}) v.push_back(p + "." + x + "." + w);
    return v;
  };
  std::vector<std::string> want = proj("self_attn");
  for (const char* n : {"linear1", "linear2", "norm1", "norm2"})
    for (const char* w : {"weight", "bias"}) want.push_back(std::string(n) + "." + w);
  REQUIRE(names_of(enc) == want);
  nn::TransformerDecoderLayer dec(o);
  auto dn = names_of(dec);
  REQUIRE(dn.size() == 26);
  REQUIRE(dn[8] == "cross_attn.q_proj.weight");
  REQUIRE(dn.back() == "norm3.bias");
  nn::TransformerEncoder stack(o, 2);
  auto sn = names_of(stack);
  REQUIRE(sn.front() == "layers.0.self_attn.q_proj.weight");
  REQUIRE(sn[16] == "layers.1.self_attn.q_proj.weight");
  REQUIRE(sn.back() == "norm.bias");
}

TEST_CASE("Transformer layers pass gradcheck, pre-norm and post-norm", "[transformer][gradcheck]") {
  Generator g(2);
  for (bool norm_first : {false, true}) {
    INFO("norm_first " << norm_first);
    nn::TransformerLayerOptions o{4, 2, 6, 0.0, norm_first ? nn::Activation::GELU : nn::Activation::ReLU};
    o.norm_first = norm_first;
    nn::TransformerEncoderLayer enc(o, &g);
    nn::TransformerDecoderLayer dec(o, &g);
    enc.to(DType::Float64);
    dec.to(DType::Float64);
    Tensor src = randn({2, 3, 4}, &g, DType::Float64).requires_grad_();
    Tensor tgt = randn({2, 2, 4}, &g, DType::Float64).requires_grad_();
    nn::EncoderLayerCall ec;
    ec.key_padding_mask = from_vector<bool>({false, false, true, false, false, false}, {2, 3});
    REQUIRE(gradcheck([&](const TensorList& in) { return enc.forward(in[0], ec); }, {src}));
    nn::DecoderLayerCall dc;
    dc.memory_key_padding_mask = ec.key_padding_mask;
    REQUIRE(gradcheck([&](const TensorList& in) { return dec.forward(in[0], in[1], dc); }, {tgt, src}));
  }
}

TEST_CASE("Transformer layers reject wrong widths and options naming the layer", "[transformer][errors]") {
  REQUIRE_THROWS_WITH(nn::TransformerEncoderLayer({10, 4, 8}),
                      Contains("TransformerEncoderLayer: d_model (10) must be divisible by nhead (4)"));
  nn::TransformerEncoderLayer enc({8, 2, 16});
  REQUIRE_THROWS_WITH(enc.forward(zeros({2, 3, 6})),
                      Contains("TransformerEncoderLayer: expected src [B, L, 8] (d_model 8), got shape [2, 3, 6]"));
  nn::TransformerDecoderLayer dec({8, 2, 16});
  REQUIRE_THROWS_WITH(dec.forward(zeros({2, 3, 8}), zeros({2, 4, 5})),
                      Contains("TransformerDecoderLayer: expected memory [B, L, 8] (d_model 8), got shape [2, 4, 5]"));
}

TEST_CASE("A decoder stack decodes step by step with caches exactly as in one pass", "[transformer][cache]") {
  Generator g(4);
  nn::TransformerLayerOptions o{8, 2, 16, 0.0};
  nn::TransformerDecoder dec(o, 2, true, &g);
  Tensor tgt = randn({2, 5, 8}, &g), memory = randn({2, 3, 8}, &g);
  nn::DecoderLayerCall call;
  call.memory_key_padding_mask = from_vector<bool>({false, false, true, false, false, false}, {2, 3});
  NoGradGuard ng;
  Tensor want = dec.forward(tgt, memory, call);
  nn::DecoderCache cache;
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 5; ++t) steps.push_back(dec.forward(tgt.narrow(1, t, 1), memory, call, &cache));
  REQUIRE(cache.length() == 5);
  REQUIRE(max_diff(cat(steps, 1), want) < 1e-5);
}

TEST_CASE("GPT: names, shapes, and cached generation gives the logits of full passes", "[transformer][gpt][cache]") {
  Generator g(6);
  nn::GPTOptions o{11, 8, 8, 2, 2};
  nn::GPT gpt(o, &g);
  auto names = names_of(gpt);
  REQUIRE(names.front() == "tok_embed.weight");
  REQUIRE(names[1] == "pos_embed.weight");
  REQUIRE(names[2] == "blocks.0.self_attn.q_proj.weight");
  REQUIRE(names.back() == "lm_head.weight");
  REQUIRE(gpt.blocks->operator[](0).linear1->weight.shape() == Shape{32, 8});
  Tensor ids = from_vector<int64_t>({1, 5, 2, 7, 3, 0, 4, 4, 9, 10, 2, 6}, {2, 6});
  NoGradGuard ng;
  Tensor full = gpt.forward(ids);
  REQUIRE(full.shape() == Shape{2, 6, 11});
  nn::GPTCache cache;
  std::vector<Tensor> steps{gpt.forward(ids.narrow(1, 0, 3), &cache)};
  for (int64_t t = 3; t < 6; ++t) steps.push_back(gpt.forward(ids.narrow(1, t, 1), &cache));
  REQUIRE(max_diff(cat(steps, 1), full) < 1e-5);
  // Causality: changing a later token leaves earlier logits alone.
  Tensor ids2 = ids.clone();
  ids2.data_ptr<int64_t>()[5] = 8;
  REQUIRE(max_diff(gpt.forward(ids2).narrow(1, 0, 5), full.narrow(1, 0, 5)) == 0.0);
  REQUIRE_THROWS_WITH(gpt.forward(zeros({2, 9}, DType::Int64)), Contains("GPT: 9 positions (0 cached + 9 new) exceed block_size 8"));
  REQUIRE_THROWS_WITH(gpt.forward(full_like(ids, 11)), Contains("11"));
}

TEST_CASE("GPT with a tied head reads its logits through the token embedding", "[transformer][gpt]") {
  Generator g(8);
  nn::GPTOptions o{7, 6, 8, 2, 1};
  o.tied_lm_head = true;
  nn::GPT gpt(o, &g);
  REQUIRE(gpt.lm_head == nullptr);
  Tensor ids = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {1, 6});
  Tensor logits = gpt.forward(ids);
  REQUIRE(logits.shape() == Shape{1, 6, 7});
  sum(mul(logits, randn({1, 6, 7}, &g))).backward();
  // Token 0 is not in the input, so its embedding row gets a gradient only
  // through the tied output head.
  REQUIRE(amax(abs(gpt.tok_embed->weight.grad().select(0, 0))).item<double>() > 0);
}
