// Models on a GPU: everything a model makes inside (masks, positions,
// positional tables, optimizer state, caches) lives on its device, and a
// model trained, saved, restored or decoded there agrees with the same model
// on the CPU. The device cases skip (as ctest "skipped") without a GPU; the
// first cases check device-independent parts of the same code on the CPU.
// The tolerances assume float32 matmuls on the GPU (TF32 off, the default).
#include <catch2/catch.hpp>

#include "tests/test_devices.h"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <heed.h>

using namespace heed;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return amax(abs(sub(a.to(kCPU).to(DType::Float64), b.to(kCPU).to(DType::Float64)))).item<double>();
}

nn::GPTOptions tiny_gpt() {
  nn::GPTOptions o{11, 8};
  o.d_model = 16, o.nhead = 2, o.num_layers = 2, o.dropout = 0;
  return o;
}

nn::Seq2SeqOptions tiny_seq2seq(double dropout) {
  nn::Seq2SeqOptions o{13, 12};
  o.d_model = 16, o.nhead = 2, o.num_encoder_layers = 1, o.num_decoder_layers = 2, o.dim_feedforward = 32;
  o.dropout = dropout, o.max_len = 32;
  return o;
}

// A batch of two sources (the second padded) and targets, PAD = 0, BOS = 1, EOS = 2.
struct Pairs {
  Tensor src = from_vector<int64_t>({4, 5, 6, 7, 2, 8, 9, 2, 0, 0}, {2, 5});
  Tensor tgt_in = from_vector<int64_t>({1, 3, 4, 5, 1, 6, 7, 0}, {2, 4});
  Tensor tgt_out = from_vector<int64_t>({3, 4, 5, 2, 6, 7, 2, 0}, {2, 4});
};

}  // namespace

// ---- on the CPU: the same code paths, device-independent --------------------------

TEST_CASE("nn device paths: a causal mask over one query hides nothing, so none is made", "[nn][attention]") {
  Generator g(3);
  Tensor q = randn({2, 2, 1, 4}, &g), k = randn({2, 2, 5, 4}, &g), v = randn({2, 2, 5, 4}, &g);
  nn::AttentionOptions causal;
  causal.causal = true;
  CHECK_FALSE(nn::attention_mask(causal, 2, 2, 1, 5, kCPU).defined());
  CHECK(nn::attention_mask(causal, 2, 2, 2, 5, kCPU).defined());
  const Tensor with = nn::scaled_dot_product_attention(q, k, v, causal).output;
  const Tensor without = nn::scaled_dot_product_attention(q, k, v).output;
  CHECK(with.to_vector<float>() == without.to_vector<float>());
}

TEST_CASE("nn device paths: clip_grad_norm of order inf is NaN when a gradient is NaN", "[nn][optim]") {
  Tensor a = zeros({3}).requires_grad_(), b = zeros({2}).requires_grad_();
  a.set_grad(from_vector<float>({1, -4, 2}));
  b.set_grad(from_vector<float>({NAN, 0}));
  CHECK(std::isnan(optim::clip_grad_norm({a, b}, 1.0, INFINITY)));
  CHECK(std::isnan(a.grad().to_vector<float>()[0]));  // a NaN norm scales every gradient to NaN, as in PyTorch
  a.set_grad(from_vector<float>({1, -4, 2}));
  b.set_grad(from_vector<float>({3, 0}));
  CHECK(optim::clip_grad_norm({a, b}, 100.0, INFINITY) == 4.0);
}

// ---- on a GPU --------------------------------------------------------------------------

TEST_CASE("nn on cuda: a GPT trains on the GPU as on the CPU", "[cuda][nn]") {
  HEED_SKIP_WITHOUT_GPU();
  Generator g1(5), g2(5);
  nn::GPT cpu(tiny_gpt(), &g1), gpu(tiny_gpt(), &g2);
  gpu.to(kCUDA);
  for (const auto& [name, p] : gpu.named_parameters()) REQUIRE(p.device() == kCUDA);
  optim::SGDOptions so;
  so.lr = 0.1, so.momentum = 0.9;
  optim::SGD opt_cpu(cpu.named_parameters(), so), opt_gpu(gpu.named_parameters(), so);
  Tensor ids = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 4, 5}, {2, 8});
  Tensor targets = from_vector<int64_t>({2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 4, 5, 6}, {2, 8});
  for (int step = 0; step < 3; ++step) {
    Tensor lc = nn::cross_entropy(cpu.forward(ids), targets);
    Tensor lg = nn::cross_entropy(gpu.forward(ids.to(kCUDA)), targets.to(kCUDA));
    REQUIRE(lg.device() == kCUDA);
    CHECK(lg.item<double>() == Approx(lc.item<double>()).epsilon(1e-5));
    opt_cpu.zero_grad(), opt_gpu.zero_grad();
    lc.backward(), lg.backward();
    const double nc = optim::clip_grad_norm(cpu.parameters(), 0.5);
    const double ng = optim::clip_grad_norm(gpu.parameters(), 0.5);
    CHECK(ng == Approx(nc).epsilon(1e-4));
    opt_cpu.step(), opt_gpu.step();
  }
  auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  for (size_t i = 0; i < pc.size(); ++i) {
    INFO(pc[i].first);
    CHECK(max_abs_diff(pc[i].second, pg[i].second) < 1e-4);
  }
  // The momentum buffers were made on the GPU, beside their parameters.
  for (const auto& [name, t] : opt_gpu.state()) CHECK(t.device() == kCUDA);

  const cuda::MemoryStats s = cuda::memory_stats(0);
  CHECK(s.allocated > 0);
  CHECK(s.peak_allocated >= s.allocated);
  CHECK(s.reserved >= s.allocated);
}

TEST_CASE("nn on cuda: optimizer state made before the model moved follows it", "[cuda][nn][optim]") {
  HEED_SKIP_WITHOUT_GPU();
  Generator g(6);
  nn::GPT model(tiny_gpt(), &g);
  optim::AdamW opt(model.named_parameters(), optim::AdamWOptions{});
  model.to(kCUDA);  // after the optimizer: its state is still on the CPU
  Tensor ids = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 8}).to(kCUDA);
  Tensor loss = nn::cross_entropy(model.forward(ids), ids);
  loss.backward();
  opt.step();
  for (const auto& [name, t] : opt.state()) {
    INFO(name);
    CHECK(t.device() == kCUDA);
  }
  CHECK(std::isfinite(nn::cross_entropy(model.forward(ids), ids).item<double>()));
}

TEST_CASE("nn on cuda: seq2seq with padding and dropout trains, saves and restores across devices",
          "[cuda][nn][checkpoint]") {
  HEED_SKIP_WITHOUT_GPU();
  Pairs d;
  Tensor src_pad = nn::padding_mask(d.src, 0), tgt_pad = nn::padding_mask(d.tgt_in, 0);
  nn::CrossEntropyOptions ce;
  ce.ignore_index = 0, ce.label_smoothing = 0.1;

  // Without dropout the GPU's loss is the CPU's.
  Generator g1(7), g2(7);
  nn::Seq2SeqTransformer cpu(tiny_seq2seq(0.0), &g1), gpu(tiny_seq2seq(0.0), &g2);
  gpu.to(kCUDA);
  const double lc = nn::cross_entropy(cpu.forward(d.src, d.tgt_in, src_pad, tgt_pad), d.tgt_out, ce).item<double>();
  const Tensor lg = nn::cross_entropy(gpu.forward(d.src.to(kCUDA), d.tgt_in.to(kCUDA), src_pad.to(kCUDA),
                                                  tgt_pad.to(kCUDA)),
                                      d.tgt_out.to(kCUDA), ce);
  CHECK(lg.item<double>() == Approx(lc).epsilon(1e-5));

  // With dropout (masks drawn on the GPU) a few AdamW steps train.
  Generator g3(8);
  nn::Seq2SeqTransformer model(tiny_seq2seq(0.1), &g3);
  model.to(kCUDA);
  optim::AdamWOptions ao;
  ao.lr = 1e-2;
  optim::AdamW opt(model.named_parameters(), ao);
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    Tensor loss = nn::cross_entropy(
        model.forward(d.src.to(kCUDA), d.tgt_in.to(kCUDA), src_pad.to(kCUDA), tgt_pad.to(kCUDA)), d.tgt_out.to(kCUDA),
        ce);
    opt.zero_grad();
    loss.backward();
    optim::clip_grad_norm(model.parameters(), 1.0);
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  CHECK(std::isfinite(last));
  CHECK(last < first);

  // A checkpoint of the GPU run loads into a CPU model and into another GPU model.
  const std::string path = (std::filesystem::temp_directory_path() / "heed_nn_device_test.h5").string();
  io::save_checkpoint(path, io::capture(model, &opt));
  io::Checkpoint ckpt = io::load_checkpoint(path);
  std::filesystem::remove(path);
  model.eval();
  NoGradGuard no_grad;
  const Tensor want = model.forward(d.src.to(kCUDA), d.tgt_in.to(kCUDA), src_pad.to(kCUDA), tgt_pad.to(kCUDA));
  nn::Seq2SeqTransformer on_cpu(tiny_seq2seq(0.1));
  io::restore(ckpt, on_cpu);
  on_cpu.eval();
  CHECK(max_abs_diff(on_cpu.forward(d.src, d.tgt_in, src_pad, tgt_pad), want) < 1e-4);
  nn::Seq2SeqTransformer on_gpu(tiny_seq2seq(0.1));
  on_gpu.to(kCUDA);
  optim::AdamW opt2(on_gpu.named_parameters(), ao);
  io::restore(ckpt, on_gpu, &opt2);
  on_gpu.eval();
  CHECK(max_abs_diff(on_gpu.forward(d.src.to(kCUDA), d.tgt_in.to(kCUDA), src_pad.to(kCUDA), tgt_pad.to(kCUDA)), want) ==
        0.0);
  for (const auto& [name, t] : opt2.state()) CHECK(t.device() == kCUDA);
}

TEST_CASE("nn on cuda: greedy decoding, beam search and GPT generation give the CPU's tokens", "[cuda][nn]") {
  HEED_SKIP_WITHOUT_GPU();
  Pairs d;
  Generator g1(9), g2(9);
  nn::Seq2SeqTransformer cpu(tiny_seq2seq(0.0), &g1), gpu(tiny_seq2seq(0.0), &g2);
  gpu.to(kCUDA);
  Tensor pad = nn::padding_mask(d.src, 0);
  nn::DecodeOptions o;
  o.max_len = 6;
  CHECK(nn::greedy_decode(gpu, d.src.to(kCUDA), pad.to(kCUDA), o) == nn::greedy_decode(cpu, d.src, pad, o));
  CHECK(nn::beam_search(gpu, d.src.to(kCUDA), pad.to(kCUDA), {3, 0.6}, o) ==
        nn::beam_search(cpu, d.src, pad, {3, 0.6}, o));

  Generator m1(10), m2(10);
  nn::GPT gpt_cpu(tiny_gpt(), &m1), gpt_gpu(tiny_gpt(), &m2);
  gpt_gpu.to(kCUDA);
  Generator s1(11), s2(11);
  // Longer than the block: generation restarts its cache on the last block - 1 tokens.
  const auto a = nn::generate(gpt_cpu, {1, 2, 3}, 12, {1.0, 0, 1.0}, &s1);
  const auto b = nn::generate(gpt_gpu, {1, 2, 3}, 12, {1.0, 0, 1.0}, &s2);
  CHECK(a == b);
}

TEST_CASE("nn on cuda: attention masks are made on the scores' device and kept", "[cuda][nn][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  nn::AttentionOptions o;
  o.causal = true;
  const Tensor m1 = nn::attention_mask(o, 2, 2, 4, 6, kCUDA);
  const Tensor m2 = nn::attention_mask(o, 2, 2, 4, 6, kCUDA);
  REQUIRE(m1.device() == kCUDA);
  CHECK(m1.impl() == m2.impl());  // the cached mask, not a new copy from the host
  CHECK(m1.to(kCPU).to_vector<bool>() == nn::causal_mask(4, 6).to_vector<bool>());
  o.window = 2;
  CHECK(nn::attention_mask(o, 2, 2, 4, 6, kCUDA).to(kCPU).to_vector<bool>() ==
        nn::sliding_window_mask(4, 6, 2, true).to_vector<bool>());
  nn::clear_attention_mask_cache();
  o.window = 0;
  CHECK(nn::attention_mask(o, 2, 2, 4, 6, kCUDA).impl() != m1.impl());
}
