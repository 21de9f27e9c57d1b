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
#include "examples/common/precision.h"
#include "examples/common/export.h"
#include "examples/common/progress.h"
#include "examples/common/run_config.h"
#include "examples/common/train_log.h"
#include "examples/common/training_length.h"
#include "io/checkpoint.h"
#include "tensor/cpu/parallel.h"

using namespace heed;
namespace fs = std::filesystem;
using examples::Config;

namespace {

struct Settings {
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
  double dropout = 0.0, lr = 2e-3, min_lr = 1e-4, weight_decay = 0.1, clip = 1.0, valid_fraction = 0.05;
  // Evaluation, best.h5's selection, the final report and the sample use an
  // exponential moving average of the weights with this decay (optim/ema.h); 0: the weights.
  double ema = 0;
  int64_t warmup = 200, seed = 1;
  // The run's length: fitted to a time budget of training (examples/common/
  // training_length.h), or a fixed number of steps (--steps; 0 = fitted).
  int64_t steps = 0;
  double time_budget = 600;
  std::string precision = "fp32";  // fp32 | tf32 | bf16 (examples/common/precision.h)
};

Config to_config(const Settings& s, int64_t vocab) {
  Config c;
  c.set("program", "lm");
  c.set("text", s.text), c.set("tokenizer", s.tokenizer), c.set("vocab_size", s.vocab_size);
  c.set("d_model", s.d_model), c.set("nhead", s.nhead), c.set("layers", s.layers), c.set("block", s.block);
  c.set("batch", s.batch), c.set("dropout", s.dropout), c.set("lr", s.lr), c.set("min_lr", s.min_lr);
  c.set("weight_decay", s.weight_decay), c.set("clip", s.clip), c.set("valid_fraction", s.valid_fraction);
  c.set("ema", s.ema);
  c.set("warmup", s.warmup), c.set("steps", s.steps), c.set("time_budget", s.time_budget);
  c.set("seed", s.seed), c.set("vocab", vocab);
  c.set("precision", s.precision);
  return c;
}

Settings from_config(const Config& c) {
  Settings s;
  s.text = c.str("text"), s.tokenizer = c.str("tokenizer"), s.vocab_size = c.integer("vocab_size");
  s.d_model = c.integer("d_model"), s.nhead = c.integer("nhead"), s.layers = c.integer("layers");
  s.block = c.integer("block"), s.batch = c.integer("batch"), s.dropout = c.real("dropout");
  s.lr = c.real("lr"), s.min_lr = c.real("min_lr"), s.weight_decay = c.real("weight_decay"), s.clip = c.real("clip");
  s.valid_fraction = c.real("valid_fraction"), s.warmup = c.integer("warmup"), s.steps = c.integer("steps");
  s.seed = c.integer("seed");
  s.ema = c.has("ema") ? c.real("ema") : 0.0;  // checkpoints from before the flag: none
  s.time_budget = c.has("time_budget") ? c.real("time_budget") : 0.0;  // checkpoints from before the budget: fixed
  s.precision = c.has("precision") ? c.str("precision") : "fp32";  // checkpoints from before the flag: fp32
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

struct RunOptions {
  std::string export_data;  // HDF5 file of the data and batches (bench/lm_torch.py trains on it)
  std::string out = "runs/lm", resume, device = "cpu", log = "log.csv";
  double time_limit = 0;
  int64_t stop_at = 0;  // stop after this step (the schedule still spans --steps); 0 = run to the end
  int64_t eval_every = 250, save_every = 250, eval_batches = 40, threads = 0, sample_len = 300;
};

int run_train(Settings s, const RunOptions& r) {
  if (r.threads > 0) cpu::set_num_threads(static_cast<int>(r.threads));
  const Device device = examples::device_from_flag(r.device);
  fs::create_directories(r.out);
  std::optional<io::Checkpoint> resumed;
  if (!r.resume.empty()) {
    resumed = io::load_checkpoint(r.resume);
    s = from_config(Config(resumed->config));
    fmt::print(stderr, "resuming {} at step {}\n", r.resume, resumed->training.at("step"));
  }
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
  fmt::print(stderr, "{}: {} characters, {} tokenizer with {} tokens: {} training and {} validation tokens\n", s.text,
             text.size(), tok->kind(), tok->vocab_size(), train_ids.size(), valid_ids.size());
  data::LMBatcher train(train_ids, s.batch, s.block, static_cast<uint64_t>(s.seed));
  data::LMBatcher valid(valid_ids, s.batch, s.block, 0);
  // nats/token -> bits/char: the validation split's tokens per character (1 for the char tokenizer).
  const double tokens_per_char = static_cast<double>(valid_ids.size()) / static_cast<double>(count_characters(valid_text));
  const auto bits_per_char = [&](double nats_per_token) { return nats_per_token * tokens_per_char / std::log(2.0); };

  nn::GPT model(model_options(s, tok->vocab_size()));
  model.to(device);
  fmt::print(stderr, "GPT: {} parameters, {} layers, d_model {}, {} heads, context {}, precision {}\n",
             model.num_parameters(), s.layers, s.d_model, s.nhead, s.block, examples::precision_name(precision));
  // Training, evaluation and the sample all run in the chosen precision.
  const auto autocast = examples::use_precision(precision, device);
  optim::AdamWOptions ao;
  ao.lr = s.lr, ao.beta1 = 0.9, ao.beta2 = 0.99, ao.weight_decay = s.weight_decay;
  optim::AdamW opt(model.named_parameters(), ao);
  examples::TrainingLength length = resumed ? examples::TrainingLength::restore(Config(resumed->config), s.warmup)
                                            : examples::TrainingLength(s.steps, s.time_budget, s.warmup);
  optim::WarmupCosineSchedule schedule(opt, {s.lr, s.min_lr, s.warmup, length.schedule_steps(s.warmup)});
  std::unique_ptr<optim::ExponentialMovingAverage> ema;
  if (s.ema > 0) ema = std::make_unique<optim::ExponentialMovingAverage>(model.named_parameters(), s.ema);
  Config config = to_config(s, tok->vocab_size());
  config.set("tokenizer_kind", tok->kind());
  // --export-data is written after training, once a time budget has fixed
  // the run's length; the initial weights are kept for it.
  HEED_CHECK(r.export_data.empty() || !resumed,
             "--export-data exports a run from its start; it cannot be combined with --resume");
  const nn::NamedTensors initial_parameters =
      r.export_data.empty() ? nn::NamedTensors{} : examples::copy_parameters(model.named_parameters());
  int64_t step = 0;
  if (resumed) {
    io::restore(*resumed, model, &opt, &schedule, &default_generator(), ema.get());
    step = resumed->training.at("step");
    train.set_position(resumed->training.at("data_position"));
  }
  auto save = [&](const std::string& name) {
    io::Checkpoint c = io::capture(model, &opt, &schedule, &default_generator(), ema.get());
    length.save(config);
    c.config = config.values();
    c.texts["tokenizer"] = tok->serialize();
    c.training["step"] = step;
    c.training["data_position"] = train.position();
    io::save_checkpoint((fs::path(r.out) / name).string(), c);
  };
  examples::TrainLog log((fs::path(r.out) / r.log).string(),
                         {"step", "train_loss", "lr", "tokens_per_s", "elapsed_s", "valid_loss", "valid_bits_per_token",
                          "valid_bits_per_char"},
                         resumed.has_value());
  examples::Curve train_curve{"train loss", {}, {}}, valid_curve{"validation loss", {}, {}};
  examples::Progress progress(length.steps(), r.time_limit, 50);
  double window = 0, best = INFINITY, last_valid = NAN;
  int64_t window_steps = 0;
  // Time in training steps alone (no evaluation or checkpoints), for comparisons with other frameworks.
  double train_seconds = 0;
  int64_t train_tokens = 0, train_steps = 0;
  double first_loss = NAN;
  model.train();
  while (length.more(step)) {
    if (r.time_limit > 0 && progress.elapsed_s() >= r.time_limit) {
      progress.message(fmt::format("time limit reached at step {}", step));
      break;
    }
    if (r.stop_at > 0 && step >= r.stop_at) {
      progress.message(fmt::format("stopping at step {} as asked (--stop-at)", step));
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    data::LMBatch b = train.next();
    Tensor loss = nn::cross_entropy(model.forward(b.x.to(device)), b.y.to(device));
    opt.zero_grad();
    loss.backward();
    optim::clip_grad_norm(model.parameters(), s.clip);
    schedule.step();
    opt.step();
    if (ema) ema->update();
    ++step;
    const double l = loss.item<double>();
    const double step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    train_seconds += step_seconds;
    length.record(step, step_seconds, schedule, progress);
    train_tokens += b.y.numel(), ++train_steps;
    if (train_steps == 1) first_loss = l;
    window += l, ++window_steps;
    progress.update(step, l, opt.lr(), b.y.numel());
    if (step % r.eval_every == 0 || !length.more(step)) {  // !more: the total, or a spent time budget
      {
        std::optional<optim::ExponentialMovingAverage::Swap> averaged;  // with --ema, evaluate the averages
        if (ema) averaged.emplace(*ema);
        last_valid = evaluate(model, valid, r.eval_batches, device);
      }
      progress.message(fmt::format("step {}: train loss {:.3f}, validation loss {:.3f} ({:.3f} bits/token, {:.3f} bits/char)",
                                   step, window / window_steps, last_valid, last_valid / std::log(2.0),
                                   bits_per_char(last_valid)));
      log.write({{"step", double(step)}, {"train_loss", window / window_steps}, {"lr", opt.lr()},
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
  if (train_steps > 0)
    fmt::print(stderr, "training steps alone: {} steps, {} tokens in {:.1f} s = {:.0f} tokens/s; first-step loss {:.5f}\n",
               train_steps, train_tokens, train_seconds, static_cast<double>(train_tokens) / train_seconds, first_loss);
  fmt::print(stderr, "{}\n", examples::device_memory_summary(device));
  save("last.h5");
  if (!r.export_data.empty()) {
    HEED_CHECK(length.steps() > 0, "--export-data: the run stopped before its time budget fixed its length, so there "
               "is no schedule to export");
    Settings exported = s;
    exported.steps = length.steps();
    length.save(config);
    export_data(r.export_data, config, *tok, train_ids, valid_ids, exported);
    examples::write_initial_parameters(r.export_data, initial_parameters);
    fmt::print(stderr, "exported the data, the initial weights and the windows of the {} batches of the schedule to {}\n",
               exported.steps, r.export_data);
  }
  examples::write_svg_plot((fs::path(r.out) / "loss.svg").string(), "lm: loss", "step", "nats per token",
                           {train_curve, valid_curve});
  if (ema) ema->copy_to_parameters();  // the final report and the sample: the averages with --ema
  const double final_valid = evaluate(model, valid, 0, device);
  fmt::print("validation loss {:.4f} nats/token = {:.3f} bits/token = {:.3f} bits/char over the whole validation split{}\n",
             final_valid, final_valid / std::log(2.0), bits_per_char(final_valid),
             ema ? fmt::format(" (averaged weights, --ema {})", s.ema) : "");
  Generator gen(static_cast<uint64_t>(s.seed));
  auto prompt = tok->encode("And");
  auto sample = nn::generate(model, prompt, r.sample_len, {0.8, 0, 0.95}, &gen);
  fmt::print("\nsample (temperature 0.8, top-p 0.95):\nAnd{}\n", tok->decode(sample));
  return 0;
}

int run_sample(const std::string& checkpoint, const std::string& prompt, int64_t max_new, double temperature,
               int64_t top_k, double top_p, int64_t seed, const std::string& device_name) {
  const Device device = examples::device_from_flag(device_name);
  io::Checkpoint ckpt = io::load_checkpoint(checkpoint);
  Config config(ckpt.config);
  HEED_CHECK(config.str("program") == "lm", "{} is not an lm checkpoint (program = {})", checkpoint,
             config.str("program"));
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
  app.require_subcommand(1);
  // A flag given twice takes its last value, so defaults can be overridden by appending.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
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
  train->add_option("--lr", s.lr)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--min-lr", s.min_lr)->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--weight-decay", s.weight_decay, "AdamW's decoupled weight decay")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--ema", s.ema,
                    "evaluate, pick best.h5 and sample with an exponential moving average of the weights of this "
                    "decay (e.g. 0.999; 0 = the weights themselves)")
      ->check(CLI::Range(0.0, 0.99999))
      ->capture_default_str();
  train->add_option("--warmup", s.warmup)->check(CLI::NonNegativeNumber)->capture_default_str();
  const examples::LengthFlags length_flags(*train, s.steps, s.time_budget);
  train->add_option("--seed", s.seed)->capture_default_str();
  train->add_option("--precision", s.precision,
                    "fp32, tf32 (GPU: TF32 tensor-core matmuls) or bf16 (mixed precision: bf16 matmuls, float32 "
                    "softmax, norms, losses and master weights); kept in the checkpoint")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))->capture_default_str();
  train->add_option("--out", r.out, "folder for checkpoints, the log and the loss plot")->capture_default_str();
  train->add_option("--resume", r.resume, "continue from this checkpoint")->check(CLI::ExistingFile);
  train->add_option("--time-limit", r.time_limit, "stop after this many seconds (0 = none)")->check(CLI::NonNegativeNumber);
  train->add_option("--stop-at", r.stop_at, "stop after this step; --resume continues the same schedule")->check(CLI::NonNegativeNumber);
  train->add_option("--eval-every", r.eval_every)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--save-every", r.save_every)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--threads", r.threads)->check(CLI::NonNegativeNumber);
  train->add_option("--device", r.device, "cpu or cuda[:index]")->capture_default_str();
  train->add_option("--log", r.log, "log file in --out (.csv or .jsonl)")->capture_default_str();
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
  sample->add_option("--device", device)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (*train) {
      length_flags.resolve();
      return run_train(s, r);
    }
    return run_sample(checkpoint, prompt, max_new, temperature, top_k, top_p, seed, device);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lm: error: {}\n", e.what());
    return 1;
  }
}
