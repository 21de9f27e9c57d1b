// Training-step speed of the two transformer models the project trains, as
// JSON lines (bench/train_torch.py is the PyTorch twin, bench/run_train.sh
// runs both on the CPU and bench/run_gpu.sh on a GPU, writing bench/RESULTS.md):
//
//   train_bench --model seq2seq|gpt|seq2seq-large|gpt-large [--device cpu|cuda[:N]]
//               [--threads 2] [--warmup 3] [--steps 10] [--dropout X] [--tf32 0|1]
//               [--precision fp32|tf32|bf16-matmul|bf16]
//
// seq2seq: nn::Seq2SeqTransformer, d_model 256, 3 + 3 layers, nhead 4, ff 1024,
//   ReLU, post-norm, vocab 8000 both sides, dropout 0.1; a batch is B = 128
//   sentence pairs padded to S = T = 24 (lengths 10..24, the same in
//   train_torch.py), PAD = 0 masked as keys and ignored by the loss.
// gpt: nn::GPT, 4 layers, d_model 256, nhead 4, block 128, vocab 65, GELU,
//   dropout 0; a batch is B = 16 rows of T = 128 tokens.
// The -large models are sized for a GPU: seq2seq-large is Transformer-base
// (d_model 512, 6 + 6 layers, nhead 8, ff 2048, vocab 32000, B = 64 pairs
// padded to S = T = 128, lengths 10..128); gpt-large is GPT-2-small-like
// (12 layers, d_model 768, nhead 12, block 1024, vocab 32768, B = 8 rows of
// T = 1024).
// One step: forward, cross_entropy (label smoothing 0.1 for seq2seq),
// backward, clip_grad_norm(1.0), AdamW step (lr 3e-4, weight decay 0.01),
// zero_grad. tokens/s counts every input position (B * (S + T) for seq2seq,
// B * T for gpt), padding included, as train_torch.py does.
//
// On the CPU, peak memory is the resident high-water mark (VmHWM) minus the
// resident set before the model was built: parameters, optimizer state,
// activations and gradients, not the program and its libraries. On a GPU it
// is the caching allocator's peak of bytes in live tensors (and, beside it,
// its peak reserved from the driver), as torch.cuda.max_memory_allocated().
// On a GPU the phase times (forward / backward / optimizer) are taken with a
// device synchronisation at each phase's end; the step time includes them.
// Matmuls are float32 there unless --tf32 1 (where heed has the switch,
// cuda/matmul.h), as PyTorch's default.
//
// With HEED_PROFILE=1 in the environment the CPU kernels are timed (see
// tensor/cpu/cpu_profile.h) and a per-kernel table of the timed steps goes to
// stderr after the JSON line.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_util.h"
#include "cuda/matmul.h"
#include "cuda/memory.h"
#include "nn/gpt.h"
#include "nn/loss.h"
#include "nn/seq2seq.h"
#include "optim/clip_grad.h"
#include "optim/optim.h"
#include "tensor/autocast.h"
#include "tensor/cpu/cpu_profile.h"
#include "tensor/cpu/matmul.h"
#include "tensor/cpu/parallel.h"
#include "tensor/ops.h"

namespace {

using heed::Tensor;
using heed::bench::Clock;
using heed::bench::seconds_since;
using heed::bench::status_bytes;

struct Args {
  std::string model = "gpt";
  std::string device = "cpu";
  int threads = 2;
  int warmup = 3;
  int steps = 10;
  double dropout = -1;  // -1: the model's default above
  bool tf32 = false;
  // fp32 | tf32 | bf16-matmul (CPU: float32 matmuls with bf16 inputs) | bf16 (autocast around forward and
  // loss); empty: from --tf32
  std::string precision;
};

Args parse(int argc, char** argv) {
  Args a;
  heed::bench::parse_flags(argc, argv, [&](const std::string& key, const std::string& val) {
    if (key == "--model") a.model = val;
    else if (key == "--threads") a.threads = std::stoi(val);
    else if (key == "--warmup") a.warmup = std::stoi(val);
    else if (key == "--steps") a.steps = std::stoi(val);
    else if (key == "--dropout") a.dropout = std::stod(val);
    else if (key == "--device") a.device = val;
    else if (key == "--tf32") a.tf32 = val == "1";
    else if (key == "--precision") a.precision = val;
    else return false;
    return true;
  });
  if (a.model != "seq2seq" && a.model != "gpt" && a.model != "seq2seq-large" && a.model != "gpt-large")
    throw std::runtime_error("--model must be seq2seq, gpt, seq2seq-large or gpt-large, got " + a.model);
  if (a.steps < 1) throw std::runtime_error("--steps must be at least 1");
  if (a.precision.empty()) a.precision = a.tf32 ? "tf32" : "fp32";
  if (a.precision != "fp32" && a.precision != "tf32" && a.precision != "bf16-matmul" && a.precision != "bf16")
    throw std::runtime_error("--precision must be fp32, tf32, bf16-matmul or bf16, got " + a.precision);
  a.tf32 = a.precision == "tf32";
  return a;
}

// Token ids from a fixed 64-bit mix (splitmix64), so every run sees the same batch.
struct TokenSource {
  uint64_t state = 12345;
  int64_t next(int64_t lo, int64_t hi) {  // in [lo, hi)
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + static_cast<int64_t>(z % static_cast<uint64_t>(hi - lo));
  }
};

// The length of sentence b of a batch padded to `max_len`: 10..max_len, the
// same formula as train_torch.py.
int64_t sentence_length(int64_t b, int64_t max_len) { return 10 + (b * 7919) % (max_len - 9); }

// One model with its batch: a step function returns the loss, the timed
// parts are recorded by the caller.
struct Workload {
  std::shared_ptr<heed::nn::Module> module;
  std::function<Tensor()> forward_loss;
  int64_t tokens_per_step = 0;
  std::string shape;
};

Workload seq2seq(bool large, double dropout, heed::Generator* gen, heed::Device device) {
  const int64_t B = large ? 64 : 128, S = large ? 128 : 24, T = S, V = large ? 32000 : 8000, PAD = 0;
  heed::nn::Seq2SeqOptions o;
  o.src_vocab = V;
  o.tgt_vocab = V;
  o.d_model = large ? 512 : 256;
  o.nhead = large ? 8 : 4;
  o.num_encoder_layers = large ? 6 : 3;
  o.num_decoder_layers = large ? 6 : 3;
  o.dim_feedforward = large ? 2048 : 1024;
  o.dropout = dropout < 0 ? 0.1 : dropout;
  o.activation = heed::nn::Activation::ReLU;
  o.norm_first = false;
  o.max_len = 256;
  auto model = std::make_shared<heed::nn::Seq2SeqTransformer>(o, gen);
  model->to(device);

  TokenSource src;
  std::vector<int64_t> src_ids(B * S), tgt_in(B * T), tgt_out(B * T);
  std::vector<uint8_t> src_pad(B * S), tgt_pad(B * T);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t ls = sentence_length(b, S), lt = sentence_length(B - 1 - b, T);
    for (int64_t s = 0; s < S; ++s) {
      src_ids[b * S + s] = s < ls ? src.next(1, V) : PAD;
      src_pad[b * S + s] = s >= ls;
    }
    for (int64_t t = 0; t < T; ++t) {
      tgt_in[b * T + t] = t < lt ? src.next(1, V) : PAD;
      tgt_pad[b * T + t] = t >= lt;
    }
    // The output is the input shifted left by one, PAD after the sentence.
    for (int64_t t = 0; t < T; ++t) tgt_out[b * T + t] = t + 1 < lt ? tgt_in[b * T + t + 1] : PAD;
  }
  Tensor src_t = heed::from_vector(src_ids, {B, S}).to(device);
  Tensor tgt_in_t = heed::from_vector(tgt_in, {B, T}).to(device);
  Tensor tgt_out_t = heed::from_vector(tgt_out, {B, T}).to(device);
  Tensor src_kpm = heed::to_dtype(heed::from_vector(src_pad, {B, S}), heed::DType::Bool).to(device);
  Tensor tgt_kpm = heed::to_dtype(heed::from_vector(tgt_pad, {B, T}), heed::DType::Bool).to(device);

  Workload w;
  w.module = model;
  w.tokens_per_step = B * (S + T);
  w.shape = fmt::format("B={} S={} T={} V={}", B, S, T, V);
  w.forward_loss = [=] {
    Tensor logits = model->forward(src_t, tgt_in_t, src_kpm, tgt_kpm);
    heed::nn::CrossEntropyOptions ce;
    ce.ignore_index = PAD;
    ce.label_smoothing = 0.1;
    return heed::nn::cross_entropy(logits, tgt_out_t, ce);
  };
  return w;
}

Workload gpt(bool large, double dropout, heed::Generator* gen, heed::Device device) {
  const int64_t B = large ? 8 : 16, T = large ? 1024 : 128, V = large ? 32768 : 65;
  heed::nn::GPTOptions o;
  o.vocab = V;
  o.block_size = T;
  o.d_model = large ? 768 : 256;
  o.nhead = large ? 12 : 4;
  o.num_layers = large ? 12 : 4;
  o.dropout = dropout < 0 ? 0.0 : dropout;
  auto model = std::make_shared<heed::nn::GPT>(o, gen);
  model->to(device);

  TokenSource src;
  std::vector<int64_t> ids(B * T), targets(B * T);
  for (auto& x : ids) x = src.next(0, V);
  for (auto& x : targets) x = src.next(0, V);
  Tensor ids_t = heed::from_vector(ids, {B, T}).to(device);
  Tensor targets_t = heed::from_vector(targets, {B, T}).to(device);

  Workload w;
  w.module = model;
  w.tokens_per_step = B * T;
  w.shape = fmt::format("B={} T={} V={}", B, T, V);
  w.forward_loss = [=] { return heed::nn::cross_entropy(model->forward(ids_t), targets_t); };
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    const heed::Device device = heed::Device::parse(a.device);
    const bool on_gpu = device.is_cuda();
    if (on_gpu) heed::cuda::set_allow_tf32(a.tf32);
    if (a.precision == "bf16-matmul" && on_gpu) throw std::runtime_error("--precision bf16-matmul is a CPU mode");
    heed::cpu::set_allow_bf16_matmul(a.precision == "bf16-matmul");
    heed::cpu::set_num_threads(a.threads);
    const double rss0 = status_bytes("VmRSS:");

    heed::Generator gen(42);
    const bool large = a.model.size() > 6 && a.model.compare(a.model.size() - 6, 6, "-large") == 0;
    Workload w = a.model.rfind("seq2seq", 0) == 0 ? seq2seq(large, a.dropout, &gen, device)
                                                 : gpt(large, a.dropout, &gen, device);
    w.module->train();
    heed::optim::AdamWOptions adamw;
    adamw.lr = 3e-4;
    adamw.weight_decay = 0.01;
    heed::optim::AdamW opt(w.module->named_parameters(), adamw);
    const heed::TensorList params = w.module->parameters();

    // On a GPU the host runs ahead of the device: a phase ends when the device has done its work.
    auto phase_end = [&] {
      if (on_gpu) heed::synchronize(device);
      return Clock::now();
    };
    double t_forward = 0, t_backward = 0, t_optim = 0, loss_value = 0;
    const bool autocast = a.precision == "bf16";
    auto step = [&] {
      auto t0 = Clock::now();
      Tensor loss;
      {
        heed::AutocastGuard guard(heed::DType::BFloat16, autocast);
        loss = w.forward_loss();
      }
      auto t1 = phase_end();
      loss.backward();
      auto t2 = phase_end();
      heed::optim::clip_grad_norm(params, 1.0);
      opt.step();
      opt.zero_grad();
      loss_value = loss.item<float>();
      t_forward += std::chrono::duration<double>(t1 - t0).count();
      t_backward += std::chrono::duration<double>(t2 - t1).count();
      t_optim += std::chrono::duration<double>(phase_end() - t2).count();
    };

    for (int i = 0; i < a.warmup; ++i) step();
    t_forward = t_backward = t_optim = 0;
    heed::cpu::profile_reset();
    auto t0 = Clock::now();
    for (int i = 0; i < a.steps; ++i) step();
    const double total = seconds_since(t0);
    double peak = status_bytes("VmHWM:") - rss0, peak_reserved = 0;
    if (on_gpu) {
      const heed::cuda::MemoryStats m = heed::cuda::memory_stats(device.index);
      peak = static_cast<double>(m.peak_allocated);
      peak_reserved = static_cast<double>(m.peak_reserved);
    }

    const double n = a.steps;
    std::printf(
        "{\"impl\": \"heed\", \"model\": \"%s\", \"device\": \"%s\", \"shape\": \"%s\", \"threads\": %d, "
        "\"steps\": %d, \"params\": %lld, \"step_ms\": %.2f, \"forward_ms\": %.2f, \"backward_ms\": %.2f, "
        "\"optim_ms\": %.2f, \"tokens_per_s\": %.1f, \"peak_mib\": %.1f, \"peak_reserved_mib\": %.1f, "
        "\"tf32\": %s, \"precision\": \"%s\", \"loss\": %.4f}\n",
        a.model.c_str(), device.str().c_str(), w.shape.c_str(), a.threads, a.steps,
        static_cast<long long>(w.module->num_parameters()), 1e3 * total / n, 1e3 * t_forward / n,
        1e3 * t_backward / n, 1e3 * t_optim / n, w.tokens_per_step * n / total, peak / (1024.0 * 1024.0),
        peak_reserved / (1024.0 * 1024.0), on_gpu && a.tf32 ? "true" : "false", a.precision.c_str(), loss_value);
    std::fflush(stdout);
    if (heed::cpu::profiling_enabled()) {
      std::fprintf(stderr, "heed kernel profile, %d steps of %s (%.1f ms of wall time in all):\n%s", a.steps,
                   a.model.c_str(), 1e3 * total, heed::cpu::profile_report().c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    return 1;
  }
}
