// lm: train a GPT language model on a text file and sample from it.
//
//   lm train [options]        train (default: the King James Bible prepared by tools/prepare_data.sh,
//                             character tokens), report validation loss, print a sample
//   lm sample -c CKPT [...]   continue a prompt with temperature, top-k and top-p sampling
//
// Generation uses a key/value cache: one new position per token.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <heed.h>
#include "data/batching.h"
#include "data/corpus.h"
#include "data/random.h"
#include "data/tokenizer.h"
#include "examples/common/device.h"
#include "examples/common/export.h"
#include "examples/common/optimization.h"
#include "examples/common/precision.h"
#include "examples/common/program.h"
#include "examples/common/progress.h"
#include "examples/common/ranks.h"
#include "examples/common/run_config.h"
#include "examples/common/train_flags.h"
#include "examples/common/train_log.h"
#include "io/checkpoint.h"

using namespace heed;
namespace fs = std::filesystem;
using examples::Config;

namespace {

// The model and data settings; the optimizer's, the run length's, the
// seed's and the precision's are TrainingSettings' (examples/common/train_flags.h).
struct Settings : examples::TrainingSettings {
  std::string text = "data/cache/kjv.txt";
  // The recipe that learns most in the default 10 minutes on 2 cores,
  // measured at equal time (docs/programs.md has the table): BPE tokens (2000,
  // about 3.8 characters each, so a step sees 3.8x the text of a character
  // model's and the context spans 480 characters) with no dropout (3 epochs
  // do not overfit) and lr 2e-3 reach 1.53 bits/char on the KJV validation
  // split, where characters with dropout 0.1 and lr 1e-3 reached 2.05.
  std::string tokenizer = "bpe";
  int64_t vocab_size = 2000;
  int64_t d_model = 256, nhead = 4, layers = 4, block = 128, batch = 16;
  double dropout = 0.0, valid_fraction = 0.05;
  Settings() { lr = 2e-3, min_lr = 1e-4, weight_decay = 0.1, ema = 0; }
};

Config to_config(const Settings& s, int64_t vocab) {
  Config c;
  c.set("program", "lm");
  c.set("text", s.text), c.set("tokenizer", s.tokenizer), c.set("vocab_size", s.vocab_size);
  c.set("d_model", s.d_model), c.set("nhead", s.nhead), c.set("layers", s.layers), c.set("block", s.block);
  c.set("batch", s.batch), c.set("dropout", s.dropout), c.set("valid_fraction", s.valid_fraction);
  c.set("vocab", vocab);
  s.save(c);
  return c;
}

Settings from_config(const Config& c) {
  Settings s;
  s.text = c.str("text"), s.tokenizer = c.str("tokenizer"), s.vocab_size = c.integer("vocab_size");
  s.d_model = c.integer("d_model"), s.nhead = c.integer("nhead"), s.layers = c.integer("layers");
  s.block = c.integer("block"), s.batch = c.integer("batch"), s.dropout = c.real("dropout");
  s.valid_fraction = c.real("valid_fraction");
  s.load(c);
  return s;
}

nn::GPTOptions model_options(const Settings& s, int64_t vocab) {
  nn::GPTOptions o{vocab, s.block};
  o.d_model = s.d_model, o.nhead = s.nhead, o.num_layers = s.layers, o.dropout = s.dropout;
  return o;
}

// The text as one string of lines joined by newlines.
std::string read_text(const std::string& path) {
  HEED_CHECK(fs::exists(path), "--text {}: no such file{}", path,
             path == "data/cache/kjv.txt" ? " (run: bash tools/prepare_data.sh, or give --text FILE)" : "");
  std::string text;
  for (const auto& line : data::read_lines(path)) text += line + "\n";
  HEED_CHECK(text.size() > 1000, "--text {}: too little text to train on ({} bytes)", path, text.size());
  return text;
}

std::unique_ptr<data::Tokenizer> train_tokenizer(const Settings& s, const std::string& text) {
  if (s.tokenizer == "char") return data::train_char_tokenizer({text});
  if (s.tokenizer == "bpe") {
    // BPE training looks at words; a few MB of lines is plenty and fast.
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      lines.push_back(text.substr(start, end - start + 1));
      start = end + 1;
    }
    return data::train_bpe_tokenizer(lines, s.vocab_size);
  }
  throw Error(fmt::format("unknown --tokenizer {} (expected char or bpe)", s.tokenizer));
}

// Characters (UTF-8 code points) in a text: bits per character is the one
// figure that compares across tokenizers (a BPE token spans several characters).
int64_t count_characters(const std::string& text) {
  return std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

// Mean cross-entropy per token over (at most max_batches) validation windows.
double evaluate(nn::GPT& model, const data::LMBatcher& valid, int64_t max_batches, Device device) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double total = 0;
  int64_t n = 0;
  for (const auto& b : valid.sequential_batches(max_batches)) {
    nn::CrossEntropyOptions o;
    o.reduction = nn::Reduction::Sum;
    total += nn::cross_entropy(model.forward(b.x.to(device)), b.y.to(device), o).item<double>();
    n += b.y.numel();
  }
  model.train(was_training);
  return n ? total / static_cast<double>(n) : NAN;
}

// What training sees, for training the same model elsewhere on the same data
// (bench/lm_torch.py): the configuration (root attributes), the train and
// valid id streams, each id's text (vocab/flat + vocab/offsets) and the
// window starts of the schedule's `steps` training batches (int64 [steps, batch]:
// x = train_ids[start:start+block], y one further). Written after training,
// when the length of a time-budgeted run is known. The starts are LMBatcher's
// rule, checked here against the batches it really makes.
void export_data(const std::string& path, const Config& config, const data::Tokenizer& tok,
                 const std::vector<int64_t>& train_ids, const std::vector<int64_t>& valid_ids, const Settings& s) {
  data::LMBatcher batcher(train_ids, s.batch, s.block, static_cast<uint64_t>(s.seed));
  const auto choices = static_cast<uint64_t>(train_ids.size()) - static_cast<uint64_t>(s.block);
  std::vector<int64_t> starts(s.steps * s.batch);
  for (int64_t i = 0; i < s.steps; ++i) {
    const std::vector<int64_t> x = batcher.next().x.to_vector<int64_t>();
    for (int64_t b = 0; b < s.batch; ++b) {
      const uint64_t hash = data::hash_counter(static_cast<uint64_t>(s.seed), static_cast<uint64_t>(i), static_cast<uint64_t>(b));
      const auto start = static_cast<int64_t>(hash % choices);
      HEED_CHECK(std::equal(x.begin() + b * s.block, x.begin() + (b + 1) * s.block, train_ids.begin() + start),
                 "--export-data: window {} of batch {} is not at the start LMBatcher's rule gives ({})", b, i, start);
      starts[i * s.batch + b] = start;
    }
  }
  io::h5::File f = io::h5::File::create(path);
  for (const auto& [key, value] : config.values()) f.write_attr_string("/", key, value);
  f.write("train_ids", from_vector<int64_t>(train_ids));
  f.write("valid_ids", from_vector<int64_t>(valid_ids));
  examples::write_strings(f, "vocab", examples::token_pieces(tok));
  f.write("train_starts", from_vector<int64_t>(starts, {s.steps, s.batch}));
}

// --export-data: HDF5 file of the data and batches (bench/lm_torch.py trains on it).
struct RunOptions : examples::RunFlags {
  int64_t eval_batches = 40, sample_len = 300;
  RunOptions() { out = "runs/lm", eval_every = 250, save_every = 250; }
};

int run_train(Settings s, const RunOptions& r) {
  std::optional<io::Checkpoint> resumed;
  const Device device = examples::start_run(r, resumed);
  if (resumed) s = from_config(Config(resumed->config));
  const examples::Precision precision = examples::precision_from_flag(s.precision, device);
  manual_seed(static_cast<uint64_t>(s.seed));
  const std::string text = read_text(s.text);
  // The last valid_fraction of the text validates (for the Bible: from Colossians on).
  const auto cut = static_cast<size_t>(static_cast<double>(text.size()) * (1.0 - s.valid_fraction));
  const std::string train_text = text.substr(0, cut), valid_text = text.substr(cut);
  std::unique_ptr<data::Tokenizer> tok =
      resumed ? data::deserialize_tokenizer(resumed->config.at("tokenizer_kind"), resumed->texts.at("tokenizer"))
              : train_tokenizer(s, train_text);
  std::vector<int64_t> train_ids = tok->encode(train_text), valid_ids = tok->encode(valid_text);
  examples::say("{}: {} characters, {} tokenizer with {} tokens: {} training and {} validation tokens\n", s.text,
             text.size(), tok->kind(), tok->vocab_size(), train_ids.size(), valid_ids.size());
  data::LMBatcher train(train_ids, s.batch, s.block, static_cast<uint64_t>(s.seed));
  data::LMBatcher valid(valid_ids, s.batch, s.block, 0);
  // nats/token -> bits/char: the validation split's tokens per character (1 for the char tokenizer).
  const double tokens_per_char = static_cast<double>(valid_ids.size()) / static_cast<double>(count_characters(valid_text));
  const auto bits_per_char = [&](double nats_per_token) { return nats_per_token * tokens_per_char / std::log(2.0); };

  nn::GPT model(model_options(s, tok->vocab_size()));
  model.to(device);
  examples::say("GPT: {} parameters, {} layers, d_model {}, {} heads, context {}, precision {}\n",
             model.num_parameters(), s.layers, s.d_model, s.nhead, s.block, examples::precision_name(precision));
  // Training, evaluation and the sample all run in the chosen precision.
  const auto autocast = examples::use_precision(precision, device);
  optim::AdamWOptions ao;
  ao.lr = s.lr, ao.beta1 = 0.9, ao.beta2 = 0.99, ao.weight_decay = s.weight_decay;
  examples::Optimization training(model, ao, s, resumed ? &*resumed : nullptr);
  Config config = to_config(s, tok->vocab_size());
  config.set("tokenizer_kind", tok->kind());
  // --export-data is written after training, once a time budget has fixed
  // the run's length; the initial weights are kept for it (a resumed run
  // has none: TrainFlags::resolve refuses --export-data with --resume).
  const nn::NamedTensors initial_parameters =
      r.export_data.empty() ? nn::NamedTensors{} : examples::copy_parameters(model.named_parameters());
  int64_t step = 0;
  if (resumed) {
    step = resumed->training.at("step");
    train.set_position(resumed->training.at("data_position"));
  }
  auto save = [&](const std::string& name) {
    if (!examples::writes()) return;  // rank 0 keeps the run
    io::Checkpoint c = training.capture(config);
    c.texts["tokenizer"] = tok->serialize();
    c.training["step"] = step;
    c.training["data_position"] = train.position();
    c.training["world_size"] = examples::world_size();
    io::save_checkpoint((fs::path(r.out) / name).string(), c);
  };
  examples::TrainLog log((fs::path(r.out) / r.log).string(),
                         {"step", "train_loss", "lr", "tokens_per_s", "elapsed_s", "valid_loss", "valid_bits_per_token",
                          "valid_bits_per_char"},
                         resumed.has_value());
  examples::Curve train_curve{"train loss", {}, {}}, valid_curve{"validation loss", {}, {}};
  examples::Progress progress(training.length.steps(), r.time_limit, 50);
  double window = 0, best = INFINITY, last_valid = NAN;
  int64_t window_steps = 0;
  examples::StepTimes step_times;
  // Every rank builds each global batch and trains on its parts of it
  // (examples/common/ranks.h): `parts` of them per step over all ranks.
  const int64_t world = examples::world_size(), parts = world * r.accumulate;
  bool out_of_time = false;  // agreed by every rank
  model.train();
  while (training.length.more(step)) {
    if (out_of_time) {
      progress.message(fmt::format("time limit reached at step {}", step));
      break;
    }
    if (r.stop_at > 0 && step >= r.stop_at) {
      progress.message(fmt::format("stopping at step {} as asked (--stop-at)", step));
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    data::LMBatch b = train.next();
    const double own_loss = training.step(r.accumulate, [&](int64_t m) {
      if (parts == 1) return nn::cross_entropy(model.forward(b.x.to(device)), b.y.to(device));
      // A part's share of the global batch's mean: its sum over the batch's tokens.
      const data::LMBatch part = data::take_part(b, m * world + examples::rank(), parts);
      if (part.x.size(0) == 0) return Tensor();
      nn::CrossEntropyOptions o;
      o.reduction = nn::Reduction::Sum;
      return mul(nn::cross_entropy(model.forward(part.x.to(device)), part.y.to(device), o),
                 1.0 / static_cast<double>(b.y.numel()));
    });
    ++step;
    // The ranks agree on the batch's loss, the step's time (for a time
    // budget's fit) and whether time is up.
    const examples::AgreedStep agreed = examples::agree_on_step(
        own_loss, std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count(),
        r.time_limit > 0 && progress.elapsed_s() >= r.time_limit);
    const double l = agreed.loss, step_seconds = agreed.seconds;
    out_of_time = agreed.out_of_time;
    step_times.record(step_seconds, b.y.numel(), l);
    training.length.record(step, step_seconds, training.schedule, progress);
    window += l, ++window_steps;
    progress.update(step, l, training.opt.lr(), b.y.numel());
    // !more: the total, or a spent time budget. Rank 0 evaluates (the others
    // wait for it in the next step's reduction).
    if (examples::writes() && (step % r.eval_every == 0 || !training.length.more(step))) {
      {
        std::optional<optim::ExponentialMovingAverage::Swap> averaged;  // with --ema, evaluate the averages
        if (training.ema) averaged.emplace(*training.ema);
        last_valid = evaluate(model, valid, r.eval_batches, device);
      }
      progress.message(fmt::format("step {}: train loss {:.3f}, validation loss {:.3f} ({:.3f} bits/token, {:.3f} bits/char)",
                                   step, window / window_steps, last_valid, last_valid / std::log(2.0),
                                   bits_per_char(last_valid)));
      log.write({{"step", double(step)}, {"train_loss", window / window_steps}, {"lr", training.opt.lr()},
                 {"tokens_per_s", progress.tokens_per_s()}, {"elapsed_s", progress.elapsed_s()},
                 {"valid_loss", last_valid}, {"valid_bits_per_token", last_valid / std::log(2.0)},
                 {"valid_bits_per_char", bits_per_char(last_valid)}});
      train_curve.x.push_back(step), train_curve.y.push_back(window / window_steps);
      valid_curve.x.push_back(step), valid_curve.y.push_back(last_valid);
      window = 0, window_steps = 0;
      if (last_valid < best) best = last_valid, save("best.h5");
    }
    if (step % r.save_every == 0) save("last.h5");
  }
  progress.finish();
  step_times.print("tokens", training.data_parallel_stats());
  examples::say("{}\n", examples::device_memory_summary(device));
  save("last.h5");
  if (!r.export_data.empty()) {
    HEED_CHECK(training.length.steps() > 0, "--export-data: the run stopped before its time budget fixed its length, so there "
               "is no schedule to export");
    Settings exported = s;
    exported.steps = training.length.steps();
    training.length.save(config);
    export_data(r.export_data, config, *tok, train_ids, valid_ids, exported);
    examples::write_initial_parameters(r.export_data, initial_parameters);
    examples::say("exported the data, the initial weights and the windows of the {} batches of the schedule to {}\n",
               exported.steps, r.export_data);
  }
  examples::write_svg_plot((fs::path(r.out) / "loss.svg").string(), "lm: loss", "step", "nats per token",
                           {train_curve, valid_curve});
  if (!examples::writes()) return 0;  // rank 0 reports
  if (training.ema) training.ema->copy_to_parameters();  // the final report and the sample: the averages with --ema
  const double final_valid = evaluate(model, valid, 0, device);
  fmt::print("validation loss {:.4f} nats/token = {:.3f} bits/token = {:.3f} bits/char over the whole validation split{}\n",
             final_valid, final_valid / std::log(2.0), bits_per_char(final_valid),
             training.ema ? fmt::format(" (averaged weights, --ema {})", s.ema) : "");
  Generator gen(static_cast<uint64_t>(s.seed));
  auto prompt = tok->encode("And");
  auto sample = nn::generate(model, prompt, r.sample_len, {0.8, 0, 0.95}, &gen);
  fmt::print("\nsample (temperature 0.8, top-p 0.95):\nAnd{}\n", tok->decode(sample));
  return 0;
}

int run_sample(const std::string& checkpoint, const std::string& prompt, int64_t max_new, double temperature,
               int64_t top_k, double top_p, int64_t seed, const std::string& device_name) {
  const Device device = examples::device_from_flag(device_name);
  io::Checkpoint ckpt = examples::load_checkpoint_of(checkpoint, "lm", "an lm");
  Config config(ckpt.config);
  auto tok = data::deserialize_tokenizer(config.str("tokenizer_kind"), ckpt.texts.at("tokenizer"));
  nn::GPT model(model_options(from_config(config), config.integer("vocab")));
  io::restore_for_evaluation(ckpt, model);
  model.to(device);
  std::vector<int64_t> ids = tok->encode(prompt.empty() ? "\n" : prompt);
  HEED_CHECK(!ids.empty(), "the prompt encodes to no tokens");
  Generator gen(static_cast<uint64_t>(seed));
  auto out = nn::generate(model, ids, max_new, {temperature, top_k, top_p}, &gen);
  fmt::print("{}{}\n", prompt, tok->decode(out));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"heed lm: train a GPT language model on a text file and sample from it"};
  examples::configure_app(app);
  Settings s;
  RunOptions r;
  CLI::App* train = app.add_subcommand("train", "train a GPT on a text file");
  train->add_option("--text", s.text, "a UTF-8 text file (default: the KJV Bible from tools/prepare_data.sh)")->capture_default_str();
  train->add_option("--tokenizer", s.tokenizer, "char or bpe")->check(CLI::IsMember({"char", "bpe"}))->capture_default_str();
  train->add_option("--vocab-size", s.vocab_size, "BPE vocabulary size")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--d-model", s.d_model)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--heads", s.nhead)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--layers", s.layers)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--block", s.block, "context length")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--batch", s.batch, "sequences per batch")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--dropout", s.dropout)->check(CLI::Range(0.0, 0.99))->capture_default_str();
  const examples::TrainFlags train_flags(*train, s, "sample");
  examples::add_run_flags(*train, r);
  train->add_option("--sample-len", r.sample_len, "tokens of the final sample")->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--export-data", r.export_data,
                    "after training, write the token ids, the vocabulary, the initial weights and the windows of "
                    "every step of the schedule to this HDF5 file (for bench/lm_torch.py)");

  std::string checkpoint, prompt, device = "cpu";
  int64_t max_new = 300, top_k = 0, seed = 1;
  double temperature = 0.8, top_p = 0.95;
  CLI::App* sample = app.add_subcommand("sample", "generate text from a checkpoint");
  sample->add_option("-c,--checkpoint", checkpoint)->required()->check(CLI::ExistingFile);
  sample->add_option("--prompt", prompt, "text to continue");
  sample->add_option("--max-new", max_new, "tokens to generate")->check(CLI::NonNegativeNumber)->capture_default_str();
  sample->add_option("--temperature", temperature)->check(CLI::PositiveNumber)->capture_default_str();
  sample->add_option("--top-k", top_k, "0 = no cut")->check(CLI::NonNegativeNumber)->capture_default_str();
  sample->add_option("--top-p", top_p)->check(CLI::Range(0.0, 1.0))->capture_default_str();
  sample->add_option("--seed", seed)->capture_default_str();
  examples::add_device_flag(*sample, device);
  return examples::run_main(app, argc, argv, "lm", [&] {
    if (*train) {
      train_flags.resolve(r);
      return examples::run_ranks("lm", r.threads, [&] { return run_train(s, r); });
    }
    return run_sample(checkpoint, prompt, max_new, temperature, top_k, top_p, seed, device);
  });
}
