// Greedy and beam-search decoding, sampling and GPT generation.
#include <catch2/catch.hpp>

#include <map>
#include <vector>

#include <heed.h>

using namespace heed;
using Catch::Contains;

namespace {
nn::Seq2SeqTransformer small_seq2seq(Generator& g) {
  nn::Seq2SeqOptions o{12, 10};
  o.d_model = 8, o.nhead = 2, o.num_encoder_layers = 1, o.num_decoder_layers = 2, o.dim_feedforward = 16;
  return nn::Seq2SeqTransformer(o, &g);
}
}  // namespace

TEST_CASE("Greedy decoding equals argmax over full uncached passes, and beam 1", "[generation]") {
  Generator g(1);
  nn::Seq2SeqTransformer model = small_seq2seq(g);
  Tensor src = from_vector<int64_t>({4, 5, 6, 2, 7, 8, 2, 0}, {2, 4});
  Tensor pad = nn::padding_mask(src, 0);
  nn::DecodeOptions d;
  d.max_len = 6;
  d.eos_id = 99;  // never produced: every row runs to max_len
  auto greedy = nn::greedy_decode(model, src, pad, d);
  REQUIRE(model.is_training());  // decoding restores the mode
  model.eval();
  NoGradGuard ng;
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<int64_t> prefix{1};
    for (int step = 0; step < 6; ++step) {
      Tensor logits = model.forward(src.narrow(0, b, 1), from_vector<int64_t>(prefix, {1, (int64_t)prefix.size()}),
                                    pad.narrow(0, b, 1));
      prefix.push_back(argmax(logits.select(0, 0).select(0, prefix.size() - 1), -1).item<int64_t>());
    }
    REQUIRE(greedy[b] == std::vector<int64_t>(prefix.begin() + 1, prefix.end()));
  }
  nn::BeamOptions one{1, 0.0};
  REQUIRE(nn::beam_search(model, src, pad, one, d) == greedy);
}

TEST_CASE("Ensemble beam search averages the models' probabilities; one model is plain beam search", "[generation]") {
  Generator g(11);
  nn::Seq2SeqTransformer a = small_seq2seq(g), b = small_seq2seq(g);
  {
    // b surer of itself, so that neither model decides every step alone.
    NoGradGuard ng;
    for (auto& [name, p] : b.named_parameters()) p.mul_(3.0);
  }
  Tensor src = from_vector<int64_t>({4, 5, 6, 2, 7, 8, 2, 0, 3, 9, 4, 2}, {3, 4});
  Tensor pad = nn::padding_mask(src, 0);
  nn::DecodeOptions d;
  d.max_len = 6;
  for (const nn::BeamOptions& beam : {nn::BeamOptions{1, 0.0}, nn::BeamOptions{3, 0.6}}) {
    const auto alone = nn::beam_search(a, src, pad, beam, d);
    REQUIRE(nn::beam_search({&a}, src, pad, beam, d) == alone);
    // Equal probabilities average to themselves, bit for bit.
    REQUIRE(nn::beam_search({&a, &a}, src, pad, beam, d) == alone);
    REQUIRE(nn::beam_search({&a, &b}, src, pad, beam, d) == nn::beam_search({&b, &a}, src, pad, beam, d));
  }
  // Beam 1: each step takes the token of highest mean probability, from full
  // uncached passes of both models.
  d.eos_id = 99;  // never produced: every row runs to max_len
  const auto together = nn::beam_search({&a, &b}, src, pad, {1, 0.0}, d);
  REQUIRE(a.is_training());  // decoding restores each model's mode
  a.eval(), b.eval();
  NoGradGuard ng;
  bool mixed = false;
  for (int64_t row = 0; row < 3; ++row) {
    std::vector<int64_t> prefix{1};
    for (int step = 0; step < 6; ++step) {
      const Tensor in = from_vector<int64_t>(prefix, {1, (int64_t)prefix.size()});
      auto probs = [&](nn::Seq2SeqTransformer& m) {
        Tensor logits = m.forward(src.narrow(0, row, 1), in, pad.narrow(0, row, 1)).select(0, 0).select(0, prefix.size() - 1);
        return softmax(logits.to(DType::Float64), -1);
      };
      prefix.push_back(argmax(add(probs(a), probs(b)), -1).item<int64_t>());
    }
    REQUIRE(together[row] == std::vector<int64_t>(prefix.begin() + 1, prefix.end()));
    mixed = mixed || (together[row] != nn::greedy_decode(a, src, pad, d)[row] &&
                      together[row] != nn::greedy_decode(b, src, pad, d)[row]);
  }
  CHECK(mixed);  // some row is neither model's own choice: the check above saw both at work

  nn::Seq2SeqOptions wide{12, 11};  // another target vocabulary
  wide.d_model = 8, wide.nhead = 2, wide.num_encoder_layers = 1, wide.num_decoder_layers = 1, wide.dim_feedforward = 16;
  nn::Seq2SeqTransformer c(wide, &g);
  REQUIRE_THROWS_WITH(nn::beam_search({&a, &c}, src, pad, {2, 0.0}, d),
                      Contains("disagree on the target vocabulary") && Contains("model 1 has 11"));
  REQUIRE_THROWS_WITH(nn::beam_search(std::vector<nn::Seq2SeqTransformer*>{}, src, pad, {2, 0.0}, d),
                      Contains("no models"));
}

TEST_CASE("Beam search finds a sequence at least as likely as greedy", "[generation]") {
  Generator g(2);
  nn::Seq2SeqTransformer model = small_seq2seq(g);
  model.eval();
  Tensor src = from_vector<int64_t>({4, 5, 6, 2}, {1, 4});
  Tensor pad = nn::padding_mask(src, 0);
  nn::DecodeOptions d;
  d.max_len = 5;
  auto logp = [&](const std::vector<int64_t>& y) {
    NoGradGuard ng;
    std::vector<int64_t> in{1};
    in.insert(in.end(), y.begin(), y.end());
    std::vector<int64_t> out = y;
    if ((int64_t)out.size() < d.max_len) out.push_back(2);  // finished with EOS
    in.resize(out.size());
    Tensor lp = log_softmax(model.forward(src, from_vector<int64_t>(in, {1, (int64_t)in.size()}), pad).to(DType::Float64), -1);
    double total = 0;
    for (size_t t = 0; t < out.size(); ++t) total += lp.select(0, 0).select(0, t).select(0, out[t]).item<double>();
    return total;
  };
  auto greedy = nn::greedy_decode(model, src, pad, d)[0];
  auto beam = nn::beam_search(model, src, pad, {6, 0.0}, d)[0];
  REQUIRE(logp(beam) >= logp(greedy) - 1e-9);
  REQUIRE_THROWS_WITH(nn::beam_search(model, src, pad, {0, 0.0}, d), Contains("beam_size must be positive"));
}

TEST_CASE("Beam search over a batch gives each sentence its own search's result", "[generation]") {
  Generator g(3);
  nn::Seq2SeqTransformer model = small_seq2seq(g);
  // Rows of different lengths (so different length limits), with padding.
  Tensor src = from_vector<int64_t>({4, 5, 6, 7, 8, 2,  //
                                     9, 2, 0, 0, 0, 0,  //
                                     3, 4, 2, 0, 0, 0,  //
                                     11, 10, 9, 8, 2, 0,  //
                                     5, 5, 2, 0, 0, 0},
                                    {5, 6});
  Tensor pad = nn::padding_mask(src, 0);
  nn::DecodeOptions d;
  d.max_len = 9, d.max_len_a = 1.0, d.max_len_b = 2;
  for (double alpha : {0.0, 0.6}) {
    for (int64_t k : {1, 3, 5}) {
      auto together = nn::beam_search(model, src, pad, {k, alpha}, d);
      REQUIRE(together.size() == 5);
      for (int64_t b = 0; b < 5; ++b) {
        auto alone = nn::beam_search(model, src.narrow(0, b, 1), pad.narrow(0, b, 1), {k, alpha}, d);
        INFO("row " << b << ", beam " << k << ", length penalty " << alpha);
        REQUIRE(together[b] == alone[0]);
      }
    }
  }
  REQUIRE(nn::beam_search(model, src.narrow(0, 0, 0), pad.narrow(0, 0, 0)).empty());
}

TEST_CASE("Banned tokens are never generated, by greedy or beam search", "[generation]") {
  Generator g(4);
  nn::Seq2SeqTransformer model = small_seq2seq(g);
  Tensor src = from_vector<int64_t>({4, 5, 6, 2, 7, 8, 2, 0}, {2, 4});
  Tensor pad = nn::padding_mask(src, 0);
  nn::DecodeOptions d;
  d.max_len = 8;
  d.eos_id = 99;  // never produced: every row runs to max_len
  auto free_greedy = nn::greedy_decode(model, src, pad, d);
  // Ban the tokens greedy liked best, and the specials.
  std::map<int64_t, int> counts;
  for (auto& row : free_greedy)
    for (int64_t t : row) ++counts[t];
  const int64_t favourite = std::max_element(counts.begin(), counts.end(), [](auto& a, auto& b) {
                              return a.second < b.second;
                            })->first;
  d.banned_ids = {0, 1, favourite};
  auto greedy = nn::greedy_decode(model, src, pad, d);
  auto beam = nn::beam_search(model, src, pad, {3, 0.6}, d);
  for (const auto* rows : {&greedy, &beam})
    for (auto& row : *rows) {
      REQUIRE(row.size() == 8);
      for (int64_t t : row) REQUIRE((t != 0 && t != 1 && t != favourite));
    }
  REQUIRE(greedy != free_greedy);
  d.banned_ids = {10};
  REQUIRE_THROWS_WITH(nn::greedy_decode(model, src, pad, d), Contains("banned token id 10 is outside the vocabulary of 10"));
}

TEST_CASE("Sampling: top-k 1 and tiny top-p are argmax; draws follow the softmax; the seed repeats them",
          "[generation]") {
  Tensor logits = from_vector<float>({0.1f, 2.0f, 1.0f, -1.0f});
  REQUIRE(nn::sample_token(logits, {1.0, 1, 1.0}) == 1);
  REQUIRE(nn::sample_token(logits, {1.0, 0, 0.01}) == 1);
  Generator a(5), b(5);
  std::map<int64_t, int> counts;
  std::vector<int64_t> first, second;
  for (int i = 0; i < 4000; ++i) {
    first.push_back(nn::sample_token(logits, {1.0, 0, 1.0}, &a));
    second.push_back(nn::sample_token(logits, {1.0, 0, 1.0}, &b));
    counts[first.back()]++;
  }
  REQUIRE(first == second);
  const double z = std::exp(0.1) + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  REQUIRE(counts[1] / 4000.0 == Approx(std::exp(2.0) / z).margin(0.03));
  REQUIRE(counts[3] / 4000.0 == Approx(std::exp(-1.0) / z).margin(0.02));
  // top-k 2 never draws the others.
  Generator c(6);
  for (int i = 0; i < 200; ++i) {
    int64_t t = nn::sample_token(logits, {1.0, 2, 1.0}, &c);
    REQUIRE((t == 1 || t == 2));
  }
  REQUIRE_THROWS_WITH(nn::sample_token(logits, {0.0, 0, 1.0}), Contains("temperature must be positive"));
  REQUIRE_THROWS_WITH(nn::sample_token(logits, {1.0, 0, 1.5}), Contains("top_p must be in (0, 1]"));
}

TEST_CASE("GPT generation with a cache equals greedy generation by full passes, past the block size",
          "[generation][gpt]") {
  Generator g(7);
  nn::GPT gpt({9, 6, 8, 2, 2}, &g);
  std::vector<int64_t> prompt{1, 4, 2};
  auto got = nn::generate(gpt, prompt, 8, {1.0, 1, 1.0});  // top-k 1: greedy
  REQUIRE(got.size() == 8);
  gpt.eval();
  NoGradGuard ng;
  std::vector<int64_t> ctx = prompt;
  for (int i = 0; i < 8; ++i) {
    const auto start = std::max<int64_t>(0, (int64_t)ctx.size() - 5);
    std::vector<int64_t> window(ctx.begin() + start, ctx.end());
    Tensor logits = gpt.forward(from_vector<int64_t>(window, {1, (int64_t)window.size()}));
    ctx.push_back(argmax(logits.select(0, 0).select(0, window.size() - 1), -1).item<int64_t>());
  }
  // Within the first block the cache gives the same tokens as full passes.
  REQUIRE(std::vector<int64_t>(got.begin(), got.begin() + 2) == std::vector<int64_t>(ctx.begin() + 3, ctx.begin() + 5));
  REQUIRE_THROWS_WITH(nn::generate(gpt, {}, 3), Contains("at least one token"));
}
