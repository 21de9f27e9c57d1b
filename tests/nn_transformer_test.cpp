// FeedForward, transformer encoder/decoder layers and stacks, GPT,
// Seq2SeqTransformer. Every case tagged [device] runs once per test device
// (tests/test_devices.h): the CPU, and cuda:0 when a GPU is visible.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <heed.h>
#include "tests/test_devices.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
using namespace heed::test;

namespace {
std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(n);
  return out;
}

// A small Seq2SeqTransformer: vocabularies 11 and 13, d_model 8, 2 heads,
// feed-forward 16, two decoder layers.
nn::Seq2SeqOptions small_seq2seq_options(int64_t encoder_layers, double dropout) {
  nn::Seq2SeqOptions o{11, 13};
  o.d_model = 8, o.nhead = 2, o.num_encoder_layers = encoder_layers, o.num_decoder_layers = 2, o.dim_feedforward = 16;
  o.dropout = dropout;
  return o;
}

// The logits of a GPT run with a cache: the first `prompt` tokens at once,
// then one token at a time.
Tensor cached_logits(nn::GPT& gpt, const Tensor& ids, int64_t prompt) {
  nn::GPTCache cache;
  std::vector<Tensor> steps{gpt.forward(ids.narrow(1, 0, prompt), &cache)};
  for (int64_t t = prompt; t < ids.size(1); ++t) steps.push_back(gpt.forward(ids.narrow(1, t, 1), &cache));
  return cat(steps, 1);
}
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

TEST_CASE("Transformer layers pass gradcheck, pre-norm and post-norm", "[transformer][gradcheck][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(2);
    for (bool norm_first : {false, true}) {
      INFO("norm_first " << norm_first);
      nn::TransformerLayerOptions o{4, 2, 6, 0.0, norm_first ? nn::Activation::GELU : nn::Activation::ReLU};
      o.norm_first = norm_first;
      nn::TransformerEncoderLayer enc(o, &g);
      nn::TransformerDecoderLayer dec(o, &g);
      enc.to(DType::Float64);
      dec.to(DType::Float64);
      enc.to(d);
      dec.to(d);
      Tensor src = randn({2, 3, 4}, &g, DType::Float64).requires_grad_();
      Tensor tgt = randn({2, 2, 4}, &g, DType::Float64).requires_grad_();
      nn::EncoderLayerCall ec;
      ec.key_padding_mask = mask(d, {false, false, true, false, false, false}, {2, 3});
      REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return enc.forward(in[0], ec); }, {src}));
      nn::DecoderLayerCall dc;
      dc.memory_key_padding_mask = ec.key_padding_mask;
      REQUIRE(gradcheck_on(d, [&](const TensorList& in) { return dec.forward(in[0], in[1], dc); }, {tgt, src}));
    }
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

TEST_CASE("A decoder stack decodes step by step with caches exactly as in one pass", "[transformer][cache][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(4);
    nn::TransformerLayerOptions o{8, 2, 16, 0.0};
    nn::TransformerDecoder dec(o, 2, true, &g);
    dec.to(d);
    Tensor tgt = randn({2, 5, 8}, &g).to(d), memory = randn({2, 3, 8}, &g).to(d);
    nn::DecoderLayerCall call;
    call.memory_key_padding_mask = mask(d, {false, false, true, false, false, false}, {2, 3});
    call.causal = true;
    NoGradGuard ng;
    Tensor want = dec.forward(tgt, memory, call);
    REQUIRE(want.device() == d);
    nn::DecoderCache cache;
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 5; ++t) steps.push_back(dec.forward(tgt.narrow(1, t, 1), memory, call, &cache));
    REQUIRE(cache.length() == 5);
    REQUIRE(max_diff(cat(steps, 1), want) < 1e-5);
  }
}

TEST_CASE("GPT: names, shapes, and cached generation gives the logits of full passes", "[transformer][gpt][cache][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    for (bool rotary : {false, true}) {
      INFO("rotary " << rotary);
      Generator g(6);
      nn::GPTOptions o{11, 8, 8, 2, 2};
      o.rotary = rotary;
      nn::GPT gpt(o, &g);
      auto names = names_of(gpt);
      REQUIRE(names.front() == "tok_embed.weight");
      if (!rotary) {
        REQUIRE(names[1] == "pos_embed.weight");
        REQUIRE(names[2] == "blocks.0.self_attn.q_proj.weight");
      } else {
        REQUIRE(names[1] == "blocks.0.self_attn.q_proj.weight");  // rotary: no position table
      }
      REQUIRE(names.back() == "lm_head.weight");
      REQUIRE(gpt.blocks->operator[](0).linear1->weight.shape() == Shape{32, 8});
      gpt.to(d);
      const std::vector<int64_t> idv = {1, 5, 2, 7, 3, 0, 4, 4, 9, 10, 2, 6};
      Tensor ids = i64(d, idv, {2, 6});
      NoGradGuard ng;
      Tensor full = gpt.forward(ids);
      REQUIRE(full.shape() == Shape{2, 6, 11});
      REQUIRE(full.device() == d);
      REQUIRE(max_diff(cached_logits(gpt, ids, 3), full) < 1e-5);
      // Causality: changing a later token leaves earlier logits alone (to the
      // bit on the CPU; a GPU's reductions need not be bit-reproducible).
      std::vector<int64_t> changed = idv;
      changed[5] = 8;
      const double moved = max_diff(gpt.forward(i64(d, changed, {2, 6})).narrow(1, 0, 5), full.narrow(1, 0, 5));
      if (d.is_cpu())
        REQUIRE(moved == 0.0);
      else
        REQUIRE(moved < 1e-6);
      REQUIRE_THROWS_WITH(gpt.forward(zeros({2, 9}, DType::Int64, d)),
                          Contains("GPT: 9 positions (0 cached + 9 new) exceed block_size 8"));
      REQUIRE_THROWS_WITH(gpt.forward(full_like(ids, 11)), Contains("11"));
    }
  }
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

TEST_CASE("Seq2SeqTransformer: names, teacher forcing, and cached greedy decoding equal to full passes",
          "[transformer][seq2seq][cache][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(10);
    nn::Seq2SeqTransformer model(small_seq2seq_options(2, 0.0), &g);
    auto names = names_of(model);
    REQUIRE(names.front() == "src_embed.weight");
    REQUIRE(names[1] == "tgt_embed.weight");
    REQUIRE(names[2] == "encoder.layers.0.self_attn.q_proj.weight");
    REQUIRE(std::find(names.begin(), names.end(), "encoder.norm.weight") != names.end());
    REQUIRE(std::find(names.begin(), names.end(), "decoder.layers.1.cross_attn.out_proj.bias") != names.end());
    REQUIRE(names.back() == "generator.bias");
    // 2 embeddings + 2 * 16 + 2 + 2 * 26 + 2 + 2 tensors, as the reference model's 92.
    REQUIRE(names.size() == 92);
    model.to(d);

    Tensor src = i64(d, {4, 5, 6, 2, 0, 0, 7, 8, 3, 9, 10, 2}, {2, 6});
    Tensor src_pad = nn::padding_mask(src, 0);
    Tensor tgt = i64(d, {1, 5, 6, 7, 1, 8, 9, 12}, {2, 4});
    NoGradGuard ng;
    Tensor logits = model.forward(src, tgt, src_pad);
    REQUIRE(logits.shape() == Shape{2, 4, 13});
    REQUIRE(logits.device() == d);
    Tensor memory = model.encode(src, src_pad);
    nn::DecoderCache cache;
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 4; ++t) steps.push_back(model.decode(tgt.narrow(1, t, 1), memory, src_pad, {}, &cache));
    REQUIRE(max_diff(cat(steps, 1), logits) < 1e-5);
    // Padding the source further changes nothing.
    Tensor src_more = cat({src, zeros({2, 2}, DType::Int64, d)}, 1);
    REQUIRE(max_diff(model.forward(src_more, tgt, nn::padding_mask(src_more, 0)), logits) < 1e-5);
    // Greedy decoding with the cache gives the argmax path of full passes.
    nn::DecodeOptions dopt;
    dopt.max_len = 5;
    dopt.eos_id = 12;  // any id; decoding stops there or at max_len
    auto hyps = nn::greedy_decode(model, src, src_pad, dopt);
    REQUIRE(hyps.size() == 2);
    for (int64_t b = 0; b < 2; ++b) {
      std::vector<int64_t> prefix{dopt.bos_id};
      for (int64_t tok : hyps[b]) {
        Tensor step_logits = model.forward(src.narrow(0, b, 1), i64(d, prefix, {1, static_cast<int64_t>(prefix.size())}),
                                           src_pad.narrow(0, b, 1));
        REQUIRE(argmax(step_logits.select(1, -1), -1).item<int64_t>() == tok);
        prefix.push_back(tok);
      }
    }
    REQUIRE_THROWS_WITH(model.forward(src, tgt.to(DType::Float32)),
                        Contains("Seq2SeqTransformer: expected tgt_ids int64 [B, L]"));
  }
}

TEST_CASE("A Seq2SeqTransformer step gives every parameter a finite gradient", "[transformer][seq2seq][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(10);
    nn::Seq2SeqTransformer model(small_seq2seq_options(1, 0.1), &g);
    model.to(d);
    Tensor src = i64(d, {4, 5, 6, 2, 0, 0, 7, 8, 3, 9, 10, 2}, {2, 6});
    Tensor tgt_in = i64(d, {1, 5, 6, 7, 1, 8, 9, 12}, {2, 4});
    Tensor tgt_out = i64(d, {5, 6, 7, 2, 8, 9, 12, 0}, {2, 4});
    Tensor logits = model.forward(src, tgt_in, nn::padding_mask(src, 0));
    Tensor loss = nn::cross_entropy(logits, tgt_out, {0, 0.1});
    REQUIRE(std::isfinite(loss.item<double>()));
    loss.backward();
    for (const auto& [name, p] : model.named_parameters()) {
      INFO(name);
      REQUIRE(p.grad().defined());
      REQUIRE(p.grad().device() == d);
      REQUIRE_FALSE(any_non_finite(p.grad()));
    }
  }
}

TEST_CASE("A tiny GPT learns a fixed sequence in a few AdamW steps", "[transformer][gpt][optim][device]") {
  FOR_EACH_TEST_DEVICE(d) {
    Generator g(3);
    nn::GPTOptions o{13, 8, 16, 2, 2};
    nn::GPT gpt(o, &g);
    gpt.to(d);
    Tensor ids = i64(d, {1, 5, 2, 7, 3, 9, 4, 11}, {1, 8});
    Tensor input = ids.narrow(1, 0, 7), target = ids.narrow(1, 1, 7);
    optim::AdamW opt(gpt.named_parameters(), {1e-2});
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
      opt.zero_grad();
      Tensor loss = nn::cross_entropy(gpt.forward(input), target);
      loss.backward();
      optim::clip_grad_norm(gpt.parameters(), 1.0);
      opt.step();
      last = loss.item<double>();
      if (step == 0) first = last;
    }
    INFO("loss " << first << " -> " << last);
    REQUIRE(last < 0.5 * first);
    for (const auto& [name, t] : opt.state()) REQUIRE(t.device() == d);
  }
}

TEST_CASE("Seq2SeqTransformer with shared embeddings and a tied generator equals the untied model so set",
          "[transformer][seq2seq][tying]") {
  nn::Seq2SeqOptions o{11, 11};
  o.d_model = 8, o.nhead = 2, o.num_encoder_layers = 1, o.num_decoder_layers = 1, o.dim_feedforward = 16;
  o.dropout = 0.0;
  nn::Seq2SeqOptions tied_options = o;
  tied_options.share_embeddings = true, tied_options.tie_generator = true;
  Generator g(21);
  nn::Seq2SeqTransformer tied(tied_options, &g);
  REQUIRE(tied.tgt_embed == tied.src_embed);
  REQUIRE(tied.generator == nullptr);
  auto names = names_of(tied);
  REQUIRE(names.front() == "src_embed.weight");
  REQUIRE(std::find(names.begin(), names.end(), "tgt_embed.weight") == names.end());
  REQUIRE(std::find(names.begin(), names.end(), "generator.weight") == names.end());

  // The untied model with the same table in all three places and a zero
  // generator bias computes the same function; the tied table's gradient is
  // the sum of the three places' gradients.
  nn::Seq2SeqTransformer untied(o, &g);
  REQUIRE(names_of(untied).size() == names.size() + 3);
  {
    NoGradGuard ng;
    auto tied_params = tied.named_parameters();
    for (auto& [name, p] : untied.named_parameters()) {
      if (name == "tgt_embed.weight" || name == "generator.weight")
        p.copy_(tied.src_embed->weight);
      else if (name == "generator.bias")
        p.zero_();
      else
        p.copy_(std::find_if(tied_params.begin(), tied_params.end(), [&](auto& np) { return np.first == name; })->second);
    }
  }
  Tensor src = from_vector<int64_t>({4, 5, 6, 2, 7, 8, 3, 9}, {2, 4});
  Tensor tgt = from_vector<int64_t>({1, 5, 6, 1, 8, 10}, {2, 3});
  Tensor probe = randn({2, 3, 11}, &g);
  Tensor tied_logits = tied.forward(src, tgt), untied_logits = untied.forward(src, tgt);
  REQUIRE(max_diff(tied_logits, untied_logits) < 1e-6);
  sum(mul(tied_logits, probe)).backward();
  sum(mul(untied_logits, probe)).backward();
  Tensor summed = add(add(untied.src_embed->weight.grad(), untied.tgt_embed->weight.grad()),
                      untied.generator->weight.grad());
  REQUIRE(max_diff(tied.src_embed->weight.grad(), summed) < 1e-5);
  REQUIRE(max_diff(tied.encoder->named_parameters().front().second.grad(),
                   untied.encoder->named_parameters().front().second.grad()) < 1e-5);

  // Sharing one table needs one vocabulary.
  nn::Seq2SeqOptions bad{11, 13};
  bad.d_model = 8, bad.nhead = 2, bad.share_embeddings = true;
  REQUIRE_THROWS_WITH(nn::Seq2SeqTransformer(bad), Contains("src_vocab is 11 and tgt_vocab 13"));
  // A tied generator alone is fine with two vocabularies.
  bad.share_embeddings = false, bad.tie_generator = true;
  REQUIRE(nn::Seq2SeqTransformer(bad).forward(src, tgt).shape() == Shape{2, 3, 13});
}

TEST_CASE("Rotary attention: relative positions, and cached decoding with offsets", "[transformer][rotary][cache]") {
  Generator g(12);
  nn::MultiheadAttentionOptions o{8, 2};
  o.rotary = true;
  nn::MultiheadAttention mha(o, &g);
  REQUIRE(mha.named_parameters().size() == 8);  // rotary adds no parameters
  Tensor x = randn({1, 5, 8}, &g);
  nn::MultiheadAttentionCall causal;
  causal.causal = true;
  causal.need_weights = true;
  NoGradGuard ng;
  auto full = mha.forward(x, causal);
  // RoPE scores depend on relative position only: the same token repeated
  // gives a query/key score that depends on i - j alone.
  Tensor same = x.narrow(1, 0, 1).expand({1, 5, 8}).contiguous();
  nn::MultiheadAttentionCall plain;
  plain.need_weights = true;
  Tensor w = mha.forward(same, plain).weights.select(0, 0).select(0, 1);  // head 1: [5, 5]
  auto at = [&](int64_t i, int64_t j) { return w.select(0, i).select(0, j).item<double>(); };
  REQUIRE(at(1, 0) / at(1, 1) == Approx(at(3, 2) / at(3, 3)).epsilon(1e-4));
  REQUIRE(at(4, 1) / at(4, 4) == Approx(at(3, 0) / at(3, 3)).epsilon(1e-4));
  nn::KVCache cache;
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 5; ++t) {
    nn::MultiheadAttentionCall c;
    c.causal = true;
    c.cache = &cache;
    steps.push_back(mha.forward(x.narrow(1, t, 1), c).output);
  }
  REQUIRE(max_diff(cat(steps, 1), full.output) < 1e-5);

  nn::GPTOptions go{9, 6, 8, 2, 2};
  go.rotary = true;
  nn::GPT gpt(go, &g);
  REQUIRE(gpt.pos_embed == nullptr);
  Tensor ids = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {1, 6});
  REQUIRE(max_diff(cached_logits(gpt, ids, 2), gpt.forward(ids)) < 1e-5);
}

TEST_CASE("Seq2SeqTransformer word dropout drops whole source and target words in training only",
          "[transformer][seq2seq][dropout]") {
  const double p = 0.5;
  // Whether each id's embedding row was used: a dropped word's row gets no gradient.
  const auto kept_rows = [](const Tensor& grad, const std::vector<int64_t>& ids) {
    std::vector<bool> kept;
    for (int64_t id : ids) kept.push_back(amax(abs(grad.select(0, id))).item<double>() != 0);
    return kept;
  };
  Generator g_plain(10), g_dropped(10);
  nn::Seq2SeqTransformer plain(small_seq2seq_options(1, 0.0), &g_plain);
  nn::Seq2SeqOptions o = small_seq2seq_options(1, 0.0);
  o.src_word_dropout = p;
  nn::Seq2SeqTransformer dropped(o, &g_dropped);
  // Every source id once, so a source embedding row's gradient says whether its word was kept.
  const std::vector<int64_t> ids{3, 4, 5, 6, 7, 8, 9, 10};
  Tensor src = i64(kCPU, ids, {1, 8});
  Tensor tgt = i64(kCPU, {1, 5, 6, 7}, {1, 4});

  // In eval the model is the one without word dropout, and nothing is drawn.
  plain.eval(), dropped.eval();
  REQUIRE(max_diff(plain.forward(src, tgt), dropped.forward(src, tgt)) == 0);

  // In training (dropout 0 otherwise): the same as the plain model with the
  // dropped words' embeddings zero and the kept ones scaled by 1 / (1 - p).
  dropped.train();
  Tensor logits = dropped.forward(src, tgt);
  sum(logits).backward();
  std::vector<double> row_scale(11, 1.0);
  const std::vector<bool> src_kept = kept_rows(dropped.src_embed->weight.grad(), ids);
  for (size_t i = 0; i < ids.size(); ++i) row_scale[static_cast<size_t>(ids[i])] = src_kept[i] ? 1.0 / (1.0 - p) : 0.0;
  const auto kept = std::count(src_kept.begin(), src_kept.end(), true);
  INFO("kept " << kept << " of 8 source words");
  REQUIRE(kept > 0);
  REQUIRE(kept < 8);
  {
    std::vector<double> w = plain.src_embed->weight.to_vector<double>();
    const int64_t width = plain.src_embed->weight.size(1);
    for (size_t i = 0; i < w.size(); ++i) w[i] *= row_scale[i / static_cast<size_t>(width)];
    set_values(plain.src_embed->weight, w);
  }
  REQUIRE(max_diff(logits, plain.forward(src, tgt)) < 1e-6);

  // The target side the same way, through the decoder's input embedding.
  nn::Seq2SeqOptions t = small_seq2seq_options(1, 0.0);
  t.tgt_word_dropout = p;
  Generator g_tgt(10);
  nn::Seq2SeqTransformer tgt_dropped(t, &g_tgt);
  Tensor tgt_ids = i64(kCPU, {1, 5, 6, 7, 8, 9, 10, 11}, {1, 8});
  sum(tgt_dropped.forward(src, tgt_ids)).backward();
  const std::vector<bool> tgt_kept = kept_rows(tgt_dropped.tgt_embed->weight.grad(), {1, 5, 6, 7, 8, 9, 10, 11});
  const auto tkept = std::count(tgt_kept.begin(), tgt_kept.end(), true);
  INFO("kept " << tkept << " of 8 target words");
  REQUIRE(tkept > 0);
  REQUIRE(tkept < 8);

  o.src_word_dropout = 1.0;
  REQUIRE_THROWS_WITH(nn::Seq2SeqTransformer(o), Contains("word dropout must be in [0, 1)"));
}
