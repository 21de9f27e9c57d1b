// DistributedDataParallel on every rank of a world: run by ctest as
// `data_parallel_mpi` under `mpirun -np 2` and as `data_parallel_single` by
// itself. The main check is the equivalence: N ranks, each training
// on its part of every batch, end with the parameters one process reaches on
// the whole batch. Each rank trains that one-process reference itself, on the
// whole batch and without communication, and compares.
//
// Agreement is to float32 rounding, not bit for bit: the reference sums the
// gradient over all rows in one order, the ranks over their own rows and then
// across ranks. The tolerance is relative to each parameter's size. In a
// world of one without micro-batches the copies through the buckets change
// no bits, and the check is exact.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <heed.h>
#include "data/batching.h"
#include "tests/dist/rank_check.h"

using namespace heed;
using rank_check::check;
using rank_check::check_throws;

namespace {

int g_world = 1;
int g_rank = 0;

// The largest |a - b| over all parameters, relative to max(1, |a|).
double max_difference(const nn::Module& a, const nn::Module& b) {
  const nn::NamedTensors pa = a.named_parameters(), pb = b.named_parameters();
  double worst = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const std::vector<float> x = pa[i].second.to_vector<float>(), y = pb[i].second.to_vector<float>();
    for (size_t j = 0; j < x.size(); ++j)
      worst = std::max(worst, std::abs(double(x[j]) - double(y[j])) / std::max(1.0, std::abs(double(x[j]))));
  }
  return worst;
}

void check_close(const nn::Module& reference, const nn::Module& trained, bool exact, const std::string& what,
                 double tolerance = 1e-6) {
  const double diff = max_difference(reference, trained);
  if (std::getenv("HEED_TEST_VERBOSE")) std::printf("rank %d: %s: %.3g\n", g_rank, what.c_str(), diff);
  if (exact) {
    check(diff == 0, what + ": a world of one must match bit for bit, differs by " + std::to_string(diff));
  } else {
    check(diff < tolerance, what + ": the ranks' parameters differ from one process's by " + std::to_string(diff));
  }
}

// SGD with momentum, not Adam: Adam divides each gradient by its own running
// size, which turns the rounding noise of gradients near zero into whole
// steps, and would hide the agreement this test is about.
optim::SGDOptions sgd() {
  optim::SGDOptions o;
  o.lr = 0.1, o.momentum = 0.9;
  return o;
}

nn::GPTOptions gpt_options() {
  nn::GPTOptions o{13, 12};
  o.d_model = 16, o.nhead = 2, o.num_layers = 2, o.dropout = 0;
  return o;
}

// The same random token windows on every rank (a fixed seed, not the rank).
data::LMBatch lm_batch(int64_t step, int64_t rows) {
  std::vector<int64_t> ids(4000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7 + i / 13 + i * i % 5) % 13);
  data::LMBatcher batcher(ids, rows, 12, 99);
  batcher.set_position(step);
  return batcher.next();
}

// K steps of GPT training: the reference on whole batches, the ranks each on
// part `rank` of `world` (split further into `micro` micro-batches, all but
// the last under no_sync), with DDP's default mean.
// On a GPU the gradients travel through host memory (dist/collective.h).
void gpt_equivalence(int64_t micro, double bucket_mb, Device device = kCPU) {
  const std::string what = "GPT on " + fmt::format("{}", device) + ", " + std::to_string(micro) +
                           " micro-batch(es), buckets of " + std::to_string(bucket_mb) + " MB";
  Generator g1(5), g2(5);
  nn::GPT reference(gpt_options(), &g1), trained(gpt_options(), &g2);
  reference.to(device);
  trained.to(device);
  optim::SGD ref_opt(reference.named_parameters(), sgd());
  dist::DataParallelOptions o;
  o.bucket_mb = bucket_mb;
  dist::DistributedDataParallel ddp(trained, o);
  if (bucket_mb < 0.01) check(ddp.num_buckets() > 5, what + ": small buckets make many, got " + std::to_string(ddp.num_buckets()));
  optim::SGD opt(trained.named_parameters(), sgd());
  const int64_t parts = g_world * micro, rows = 2 * parts;
  for (int64_t step = 0; step < 3; ++step) {
    const data::LMBatch batch = lm_batch(step, rows);
    ref_opt.zero_grad();
    nn::cross_entropy(reference.forward(batch.x.to(device)), batch.y.to(device)).backward();
    ref_opt.step();

    opt.zero_grad();
    for (int64_t m = 0; m < micro; ++m) {
      const data::LMBatch part = data::take_part(batch, m * g_world + g_rank, parts);
      // Each micro-batch's mean counts 1/micro of the rank's; DDP averages the ranks.
      Tensor loss =
          mul(nn::cross_entropy(trained.forward(part.x.to(device)), part.y.to(device)), 1.0 / static_cast<double>(micro));
      if (m + 1 < micro) {
        auto pause = ddp.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    opt.step();
  }
  check_close(reference, trained, g_world == 1 && micro == 1, what, device.is_cpu() ? 1e-6 : 1e-5);
  check(ddp.stats().reductions == 3, what + ": one reduction per step, got " + std::to_string(ddp.stats().reductions));
}

nn::Seq2SeqOptions seq2seq_options() {
  nn::Seq2SeqOptions o{17, 19};
  o.d_model = 16, o.nhead = 2, o.num_encoder_layers = 1, o.num_decoder_layers = 1, o.dim_feedforward = 24;
  o.dropout = 0, o.max_len = 32;
  return o;
}

// Sentence pairs of many lengths, the same on every rank.
std::vector<data::EncodedPair> pairs() {
  std::vector<data::EncodedPair> out;
  for (int64_t i = 0; i < 60; ++i) {
    data::EncodedPair p;
    for (int64_t k = 0; k < 2 + (i * 5) % 9; ++k) p.src.push_back(4 + (i * 3 + k) % 13);
    for (int64_t k = 0; k < 1 + (i * 7) % 11; ++k) p.tgt.push_back(4 + (i + k * 2) % 15);
    out.push_back(p);
  }
  return out;
}

Tensor seq2seq_loss(nn::Seq2SeqTransformer& model, const data::TranslationBatch& b, nn::Reduction reduction) {
  nn::CrossEntropyOptions o;
  o.ignore_index = data::kPad;
  o.label_smoothing = 0.1;
  o.reduction = reduction;
  return nn::cross_entropy(model.forward(b.src, b.tgt_in, b.src_pad, b.tgt_pad), b.tgt_out, o);
}

// The programs' recipe for parts of uneven size: each rank's loss is its
// tokens' share of the global batch's mean (sum / global tokens), and DDP
// sums. A rank whose part is empty joins with reduce_gradients().
void seq2seq_equivalence(int64_t micro) {
  const std::string what = "Seq2SeqTransformer, " + std::to_string(micro) + " micro-batch(es)";
  Generator g1(8), g2(8);
  nn::Seq2SeqTransformer reference(seq2seq_options(), &g1), trained(seq2seq_options(), &g2);
  optim::SGD ref_opt(reference.named_parameters(), sgd());
  dist::DataParallelOptions o;
  o.op = dist::ReduceOp::Sum;
  o.bucket_mb = 0.002;
  dist::DistributedDataParallel ddp(trained, o);
  optim::SGD opt(trained.named_parameters(), sgd());
  data::TranslationBatcher batcher(pairs(), 160, 3);
  const int64_t parts = g_world * micro;
  for (int64_t step = 0; step < 3; ++step) {
    const data::TranslationBatch batch = batcher.next();
    ref_opt.zero_grad();
    seq2seq_loss(reference, batch, nn::Reduction::Mean).backward();
    ref_opt.step();

    opt.zero_grad();
    bool ran_backward = false;
    for (int64_t m = 0; m < micro; ++m) {
      const data::TranslationBatch part = data::take_part(batch, m * g_world + g_rank, parts);
      if (part.num_tgt_tokens == 0) continue;
      Tensor loss = mul(seq2seq_loss(trained, part, nn::Reduction::Sum), 1.0 / static_cast<double>(batch.num_tgt_tokens));
      const bool last = m + 1 == micro;
      if (!last) {
        auto pause = ddp.no_sync();
        loss.backward();
      } else {
        loss.backward();
        ran_backward = true;
      }
    }
    if (!ran_backward) ddp.reduce_gradients();
    opt.step();
  }
  check_close(reference, trained, false, what);
}

// Rank 0's weights reach every rank at construction.
void broadcast_at_start() {
  Generator mine(100 + static_cast<uint64_t>(g_rank)), zero(100);
  nn::GPT model(gpt_options(), &mine), rank0(gpt_options(), &zero);
  dist::DistributedDataParallel ddp(model);
  check(max_difference(rank0, model) == 0, "after construction every rank holds rank 0's parameters");
}

// A parameter no rank uses keeps no gradient; one used on some ranks gets the
// mean with zeros for the others.
struct TwoHeads : nn::Module {
  TwoHeads() : nn::Module("TwoHeads") {
    Generator g(3);
    a = register_module("a", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, &g));
    b = register_module("b", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, &g));
    c = register_module("c", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, &g));
  }
  std::shared_ptr<nn::Linear> a, b, c;
};

void unused_parameters() {
  TwoHeads model, alone;
  dist::DistributedDataParallel ddp(model);
  Tensor x = ones({1, 3});
  Tensor loss = sum(model.a->forward(x));
  if (g_rank == 0) loss = add(loss, sum(model.b->forward(x)));  // b on rank 0 only; c nowhere
  loss.backward();
  sum(alone.a->forward(x)).backward();
  sum(alone.b->forward(x)).backward();
  check(max_difference(model, alone) == 0, "unused parameters: the values stay");
  check(model.a->weight.grad().to_vector<float>() == alone.a->weight.grad().to_vector<float>(),
        "a parameter every rank used: the mean of equal gradients");
  std::vector<float> b_grad = alone.b->weight.grad().to_vector<float>();
  for (float& v : b_grad) v /= static_cast<float>(g_world);
  check(model.b->weight.grad().defined() && model.b->weight.grad().to_vector<float>() == b_grad,
        "a parameter rank 0 alone used: its gradient over the world size on every rank");
  check(!model.c->weight.grad().defined(), "a parameter no rank used keeps no gradient");
}

// A rank with nothing to train on this step joins with reduce_gradients().
void rank_without_backward() {
  TwoHeads model, alone;
  dist::DistributedDataParallel ddp(model);
  Tensor x = ones({1, 3});
  if (g_rank == 0) {
    sum(model.a->forward(x)).backward();
  } else {
    ddp.reduce_gradients();
  }
  sum(alone.a->forward(x)).backward();
  std::vector<float> expected = alone.a->weight.grad().to_vector<float>();
  for (float& v : expected) v /= static_cast<float>(g_world);
  check(model.a->weight.grad().defined() && model.a->weight.grad().to_vector<float>() == expected,
        "reduce_gradients on the ranks that ran no backward: rank 0's gradient over the world size");
  check(!model.b->weight.grad().defined(), "reduce_gradients: an unused parameter keeps no gradient");
}

void mismatched_models() {
  if (g_world == 1) return;
  nn::GPTOptions o = gpt_options();
  if (g_rank == 1) o.d_model = 24;
  nn::GPT model(o);
  check_throws([&] { dist::DistributedDataParallel ddp(model); }, g_rank == 1 ? "this rank has parameter" : "rank 1",
               "models that differ between ranks");
}

void bad_options() {
  nn::GPT model(gpt_options());
  dist::DataParallelOptions o;
  o.bucket_mb = 0;
  check_throws([&] { dist::DistributedDataParallel ddp(model, o); }, "bucket_mb must be > 0", "bucket_mb 0");
}

}  // namespace

int main(int argc, char** argv) {
  rank_check::g_program = "data_parallel_test";
  const bool require_mpi = rank_check::mpi_required(argc, argv);
  if (require_mpi && rank_check::no_mpi_to_test()) return rank_check::kSkip;
  dist::InitGuard guard;
  g_world = dist::world_size();
  g_rank = rank_check::g_rank = dist::rank();
  if (require_mpi) check(g_world == 2, "mpirun -np 2 gives a world of 2, got " + std::to_string(g_world));
  broadcast_at_start();
  gpt_equivalence(1, 4);
  gpt_equivalence(2, 4);
  gpt_equivalence(1, 0.001);
  if (cuda_is_available()) {
    gpt_equivalence(1, 4, kCUDA);
    gpt_equivalence(2, 0.001, kCUDA);
  } else if (g_rank == 0) {
    std::printf("[skip] DistributedDataParallel on CUDA tensors: no GPU here\n");
  }
  seq2seq_equivalence(1);
  seq2seq_equivalence(3);
  unused_parameters();
  rank_without_backward();
  mismatched_models();
  bad_options();
  dist::barrier();
  return rank_check::report(g_world);
}
