// translate: train a Seq2SeqTransformer on a parallel corpus and translate with it.
//
//   translate train [options]            train (default: German -> English sentences of the Ding
//                                        dictionary, /usr/share/trans/de-en), then print test BLEU
//                                        and a handful of translations
//   translate decode -c CKPT [sentences] translate sentences (or --file, one per line)
//   translate test -c CKPT               the test-set report of train for a checkpoint (other --beam ...)
//   translate bleu --hyp FILE --ref FILE corpus BLEU of translations (one per line)
//
// Everything a run needs to continue or to translate later is in its checkpoints: the model,
// the optimizer and schedule, the RNG, the data position, the configuration and both tokenizers.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>

#include <heed.h>
#include "data/batching.h"
#include "data/bleu.h"
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
#include "examples/common/seq2seq_config.h"
#include "examples/common/train_flags.h"
#include "examples/common/train_log.h"
#include "io/checkpoint.h"
#include "tensor/cpu/cpu_profile.h"
#include "tensor/cpu/parallel.h"

using namespace heed;
namespace fs = std::filesystem;
using examples::Config;

namespace {

// ---- configuration -------------------------------------------------------------------

// The model and data settings; the optimizer's, the run length's, the
// seed's and the precision's are TrainingSettings' (examples/common/train_flags.h).
struct TrainSettings : examples::TrainingSettings {
  std::string data = "/usr/share/trans/de-en";  // Ding file, or a .tsv of pairs
  std::string task;                             // copy | reverse | sort: synthetic data instead
  std::string tokenizer = "bpe";
  int64_t vocab_size = 2000;
  int64_t src_vocab_size = 0;  // the source side's, when it differs (0: vocab_size)
  int64_t min_count = 2;
  // Sized for the main job, 10 minutes of training on 2 cores, about 13
  // epochs of the 17,057 pairs: what learns most in that time, measured at
  // equal training time (docs/programs.md has the tables). One encoder and one
  // decoder layer beat 2+2 and 2+1, d_model 256 / ff 1024 beat ff 2048 and
  // d_model 384 (slower steps), lr 1.4e-3 beat 7e-4 to 3e-3, BPE 2000 per
  // language beat 1000, 4000, shared and word vocabularies, dropout 0.2 beat
  // 0, 0.1 and 0.3 over 13 epochs, 4096-token batches match 2048 at half the
  // steps (and use the cores better), and averaged weights (training.ema) reach the
  // plateau a quarter of the run sooner, which a slower machine needs.
  int64_t d_model = 256, nhead = 4, encoder_layers = 1, decoder_layers = 1, ff = 1024;
  bool norm_first = true;  // pre-norm layers (LayerNorm before each block)
  bool shared_vocab = false;  // one tokenizer and one embedding table for both languages
  bool tie_output = false;    // the output layer reuses the target embedding table
  // This many of the Ding dictionary's word and phrase entries (a seeded
  // sample; -1: all) join the training pairs (data::read_ding_phrases); the
  // tokenizers still learn from sentences only.
  int64_t dictionary_phrases = 0;
  double dropout = 0.2, label_smoothing = 0.1;
  // BPE-dropout: each epoch, every training sentence is segmented afresh with
  // this merge dropout (Tokenizer::encode_sampled); 0 keeps one segmentation.
  double bpe_dropout = 0.0;
  // Word dropout (nn::Seq2SeqOptions): a training token's whole embedding
  // zeroed with this probability, on the source and the target input side.
  double src_word_dropout = 0.0, tgt_word_dropout = 0.0;
  int64_t max_tokens = 4096, max_len = 48;
  double valid_fraction = 0.04, test_fraction = 0.05;
  // The seed of the data: the train / valid / test split and a synthetic
  // task's pairs; -1: --seed. Runs that differ only in --seed (initial
  // weights, batch order, dropout) but share this see the same split and
  // learn the same tokenizers, so they can decode as an ensemble.
  int64_t split_seed = -1;
  // A source that joins sentences with "; " is translated sentence by
  // sentence, the translations joined with "; " again
  // (data::split_joined_sentences): +0.25 beam BLEU on the validation split
  // (docs/programs.md). train_joined_apart trains on such pairs' sentences
  // as pairs of their own (data::split_joined_pairs); measured worse, so off.
  bool split_joined = true, train_joined_apart = false;
  TrainSettings() { lr = 1.4e-3, min_lr = 1e-5, weight_decay = 0.01, ema = 0.998; }
};

uint64_t data_seed(const TrainSettings& s) { return static_cast<uint64_t>(s.split_seed >= 0 ? s.split_seed : s.seed); }

Config to_config(const TrainSettings& s, int64_t src_vocab, int64_t tgt_vocab) {
  Config c;
  c.set("program", "translate");
  c.set("data", s.data), c.set("task", s.task), c.set("tokenizer", s.tokenizer);
  c.set("vocab_size", s.vocab_size), c.set("src_vocab_size", s.src_vocab_size), c.set("min_count", s.min_count);
  c.set("d_model", s.d_model), c.set("nhead", s.nhead), c.set("encoder_layers", s.encoder_layers);
  c.set("decoder_layers", s.decoder_layers), c.set("dim_feedforward", s.ff);
  c.set("norm_first", int64_t{s.norm_first});
  c.set("shared_vocab", int64_t{s.shared_vocab}), c.set("tie_output", int64_t{s.tie_output});
  c.set("dictionary_phrases", s.dictionary_phrases);
  c.set("dropout", s.dropout), c.set("label_smoothing", s.label_smoothing), c.set("bpe_dropout", s.bpe_dropout);
  c.set("src_word_dropout", s.src_word_dropout), c.set("tgt_word_dropout", s.tgt_word_dropout);
  c.set("max_tokens", s.max_tokens), c.set("max_len", s.max_len);
  c.set("valid_fraction", s.valid_fraction), c.set("test_fraction", s.test_fraction);
  c.set("split_seed", static_cast<int64_t>(data_seed(s)));
  c.set("split_joined", int64_t{s.split_joined}), c.set("train_joined_apart", int64_t{s.train_joined_apart});
  c.set("src_vocab", src_vocab), c.set("tgt_vocab", tgt_vocab);
  s.save(c);
  return c;
}

TrainSettings from_config(const Config& c) {
  TrainSettings s;
  s.data = c.str("data"), s.task = c.str("task"), s.tokenizer = c.str("tokenizer");
  s.vocab_size = c.integer("vocab_size"), s.min_count = c.integer("min_count");
  s.src_vocab_size = c.integer_or("src_vocab_size", 0);
  s.d_model = c.integer("d_model"), s.nhead = c.integer("nhead"), s.encoder_layers = c.integer("encoder_layers");
  s.decoder_layers = c.integer("decoder_layers"), s.ff = c.integer("dim_feedforward");
  s.norm_first = c.flag("norm_first"), s.shared_vocab = c.flag("shared_vocab"), s.tie_output = c.flag("tie_output");
  s.dictionary_phrases = c.integer_or("dictionary_phrases", 0);  // older checkpoints: none
  s.dropout = c.real("dropout"), s.label_smoothing = c.real("label_smoothing");
  s.bpe_dropout = c.real_or("bpe_dropout", 0.0);  // older checkpoints: none
  s.src_word_dropout = c.real_or("src_word_dropout", 0.0);  // older checkpoints: none
  s.tgt_word_dropout = c.real_or("tgt_word_dropout", 0.0);
  s.max_tokens = c.integer("max_tokens"), s.max_len = c.integer("max_len");
  s.valid_fraction = c.real("valid_fraction"), s.test_fraction = c.real("test_fraction");
  s.load(c);
  s.split_seed = c.integer_or("split_seed", s.seed);  // older checkpoints: --seed
  // Older checkpoints: whole sides, as they were trained and reported.
  s.split_joined = c.flag("split_joined"), s.train_joined_apart = c.flag("train_joined_apart");
  return s;
}

nn::Seq2SeqOptions model_options(const TrainSettings& s, int64_t src_vocab, int64_t tgt_vocab) {
  return examples::seq2seq_options(to_config(s, src_vocab, tgt_vocab));
}

// ---- data ----------------------------------------------------------------------------

struct Corpus {
  data::PairSplits splits;
  std::unique_ptr<data::Tokenizer> src_tok, tgt_tok;
};

// A checkpoint's two tokenizers (the corpus splits are left empty).
Corpus tokenizers_of(const io::Checkpoint& ckpt) {
  Corpus c;
  c.src_tok = data::deserialize_tokenizer(ckpt.config.at("src_tokenizer_kind"), ckpt.texts.at("src_tokenizer"));
  c.tgt_tok = data::deserialize_tokenizer(ckpt.config.at("tgt_tokenizer_kind"), ckpt.texts.at("tgt_tokenizer"));
  return c;
}

bool is_tsv(const std::string& path) { return path.size() > 4 && path.substr(path.size() - 4) == ".tsv"; }

std::vector<data::SentencePair> read_pairs(const TrainSettings& s) {
  if (!s.task.empty()) {
    data::SyntheticTask task = s.task == "copy"      ? data::SyntheticTask::Copy
                               : s.task == "reverse" ? data::SyntheticTask::Reverse
                               : s.task == "sort"    ? data::SyntheticTask::Sort
                                                     : throw Error(fmt::format("unknown --task {}", s.task));
    return data::make_synthetic_pairs(task, 6000, 3, 12, 20, data_seed(s));
  }
  HEED_CHECK(fs::exists(s.data), "--data {}: no such file{}", s.data,
             s.data == "/usr/share/trans/de-en" ? " (install the Debian package trans-de-en)" : "");
  return is_tsv(s.data) ? data::read_tsv_pairs(s.data) : data::read_ding_pairs(s.data);
}

std::unique_ptr<data::Tokenizer> train_tokenizer(const TrainSettings& s, const std::vector<std::string>& texts,
                                                 int64_t vocab_size) {
  if (s.tokenizer == "bpe") return data::train_bpe_tokenizer(texts, vocab_size);
  if (s.tokenizer == "word") return data::train_word_tokenizer(texts, s.min_count, vocab_size);
  if (s.tokenizer == "char") return data::train_char_tokenizer(texts);
  throw Error(fmt::format("unknown --tokenizer {} (expected bpe, word or char)", s.tokenizer));
}

std::vector<data::EncodedPair> encode(const std::vector<data::SentencePair>& pairs, const Corpus& c) {
  std::vector<data::EncodedPair> out;
  out.reserve(pairs.size());
  for (const auto& p : pairs) out.push_back({c.src_tok->encode(p.src), c.tgt_tok->encode(p.tgt)});
  return out;
}

// Source ids of sentences as a padded batch (tokens, EOS, PAD...).
std::pair<Tensor, Tensor> source_batch(const data::Tokenizer& tok, const std::vector<std::string>& sentences,
                                       int64_t max_len, Device device) {
  std::vector<std::vector<int64_t>> rows;
  int64_t S = 1;
  for (const auto& s : sentences) {
    auto ids = tok.encode(s);
    if (static_cast<int64_t>(ids.size()) > max_len) ids.resize(max_len);
    ids.push_back(data::kEos);
    S = std::max<int64_t>(S, ids.size());
    rows.push_back(std::move(ids));
  }
  std::vector<int64_t> flat;
  for (auto& r : rows) {
    r.resize(S, data::kPad);
    flat.insert(flat.end(), r.begin(), r.end());
  }
  Tensor src = from_vector<int64_t>(flat, {static_cast<int64_t>(rows.size()), S}).to(device);
  return {src, nn::padding_mask(src, data::kPad)};
}

// Greedy (beam 1) or beam search with one model, or with an ensemble whose
// models average their next-token probabilities (nn::beam_search).
std::vector<std::string> translate_each(const std::vector<nn::Seq2SeqTransformer*>& models, const Corpus& c,
                                        const std::vector<std::string>& sentences, int64_t beam,
                                        double length_penalty, int64_t max_len, Device device) {
  std::vector<std::string> out;
  const size_t chunk = 64;  // sentences per decoder batch (beam search: each keeps its own beam)
  const nn::DecodeOptions d = examples::translation_decode_options(max_len);
  for (size_t i = 0; i < sentences.size(); i += chunk) {
    std::vector<std::string> part(sentences.begin() + i, sentences.begin() + std::min(sentences.size(), i + chunk));
    auto [src, pad] = source_batch(*c.src_tok, part, max_len, device);
    auto ids = beam == 1 && models.size() == 1 ? nn::greedy_decode(*models[0], src, pad, d)
                                               : nn::beam_search(models, src, pad, {beam, length_penalty}, d);
    for (auto& row : ids) out.push_back(c.tgt_tok->decode(row));
  }
  return out;
}

// translate_each; with split_joined the sentences a source joins with "; "
// are translated apart (in the same batches) and their translations joined
// with "; " again.
std::vector<std::string> translate(const std::vector<nn::Seq2SeqTransformer*>& models, const Corpus& c,
                                   const std::vector<std::string>& sentences, int64_t beam, double length_penalty,
                                   int64_t max_len, bool split_joined, Device device) {
  if (!split_joined) return translate_each(models, c, sentences, beam, length_penalty, max_len, device);
  std::vector<std::string> parts;
  std::vector<size_t> count;
  for (const std::string& sentence : sentences) {
    const std::vector<std::string> p = data::split_joined_sentences(sentence);
    parts.insert(parts.end(), p.begin(), p.end());
    count.push_back(p.size());
  }
  const std::vector<std::string> done = translate_each(models, c, parts, beam, length_penalty, max_len, device);
  std::vector<std::string> out;
  auto next = done.begin();
  for (size_t n : count) {
    out.push_back(fmt::format("{}", fmt::join(next, next + static_cast<std::ptrdiff_t>(n), "; ")));
    next += static_cast<std::ptrdiff_t>(n);
  }
  return out;
}

// Mean cross-entropy (no smoothing) over the given batches, in eval mode, per
// target token and per target word. A word is a 13a token of the reference (the
// unit BLEU counts), plus one for the end of the sentence, as a word-level
// model would predict it: nats per word compare runs whose tokenizers differ
// (BPE, words, characters) and compare with word-level figures elsewhere.
struct ValidationLoss {
  double per_token = NAN, per_word = NAN;
};

ValidationLoss evaluate_loss(nn::Seq2SeqTransformer& model, const std::vector<data::TranslationBatch>& batches,
                             const std::vector<int64_t>& words_per_pair, Device device) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double total = 0;
  int64_t tokens = 0, words = 0;
  for (const auto& b : batches) {
    Tensor logits = model.forward(b.src.to(device), b.tgt_in.to(device), b.src_pad.to(device), b.tgt_pad.to(device));
    nn::CrossEntropyOptions o;
    o.ignore_index = data::kPad;
    o.reduction = nn::Reduction::Sum;
    total += nn::cross_entropy(logits, b.tgt_out.to(device), o).item<double>();
    tokens += b.num_tgt_tokens;
    for (int64_t i : b.indices) words += words_per_pair.at(static_cast<size_t>(i));
  }
  model.train(was_training);
  ValidationLoss loss;
  if (tokens) loss.per_token = total / static_cast<double>(tokens);
  if (words) loss.per_word = total / static_cast<double>(words);
  return loss;
}

std::vector<int64_t> words_per_target(const std::vector<data::SentencePair>& pairs) {
  std::vector<int64_t> out;
  out.reserve(pairs.size());
  for (const auto& p : pairs) out.push_back(static_cast<int64_t>(data::tokenize_13a(p.tgt).size()) + 1);
  return out;
}

std::vector<std::string> sides(const std::vector<data::SentencePair>& pairs, bool source, size_t limit = 0) {
  std::vector<std::string> out;
  for (const auto& p : pairs) {
    if (limit && out.size() >= limit) break;
    out.push_back(source ? p.src : p.tgt);
  }
  return out;
}

// ---- train ---------------------------------------------------------------------------

// GNMT length penalty 2.0 by default: this corpus's models stop early (beam 4
// output ~20% short of the references at 1.0); 2.0 scored best on the whole
// validation split over eight models (docs/programs.md).
constexpr double kDefaultLengthPenalty = 2.0;

// --export-data: HDF5 file of the data and batches (bench/translate_torch.py
// trains on it). `test` uses the test report's options, --threads and --device.
struct RunOptions : examples::RunFlags {
  int64_t show = 8, beam = 4;
  double length_penalty = kDefaultLengthPenalty;
  int64_t bleu_subset = 300;
  int64_t beam_sentences = 0;  // 0: the whole test set
  std::string hyp_out;         // greedy test translations, one per line
  std::string split = "test";  // `test --split valid`: decoding settings are chosen on validation, not test
  int64_t split_joined = -1;   // test / decode: 1 or 0 overrides the checkpoint's split_joined
  RunOptions() { out = "runs/translate", eval_every = 400, save_every = 400; }
};

// Whether joined sentences are translated apart: as `flag` asks (1 or 0,
// from --split-joined / --whole-sentences), else as the checkpoint says.
bool joined_apart(int64_t flag, const TrainSettings& s) { return flag >= 0 ? flag == 1 : s.split_joined; }

std::vector<std::vector<int64_t>> id_rows(const std::vector<data::EncodedPair>& pairs, bool source) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& p : pairs) out.push_back(source ? p.src : p.tgt);
  return out;
}

// What training sees, for training the same model elsewhere on the same data
// (bench/translate_torch.py): the configuration (root attributes), the encoded
// splits (<split>/src, <split>/tgt: ragged ids without BOS/EOS; row i is pair i
// of the split), the test sentences as text, each vocabulary's pieces, and the
// rows of the first `steps` training batches and of the validation batches
// (indices into train and valid). The model's initial weights follow
// (write_initial_parameters). Written after training, when the length of a
// time-budgeted run is known: the batchers are rebuilt here exactly as
// training built them, since they are pure functions of the pairs and the
// settings.
void export_data(const std::string& path, const TrainSettings& s, const Corpus& corpus,
                 const std::vector<data::EncodedPair>& train, const std::vector<data::EncodedPair>& valid) {
  Config config = to_config(s, corpus.src_tok->vocab_size(), corpus.tgt_tok->vocab_size());
  config.set("src_tokenizer_kind", corpus.src_tok->kind());
  config.set("tgt_tokenizer_kind", corpus.tgt_tok->kind());
  const auto test = encode(corpus.splits.test, corpus);
  data::TranslationBatcher batcher(train, s.max_tokens, static_cast<uint64_t>(s.seed), true, s.max_len);
  const auto valid_batches = data::TranslationBatcher(valid, s.max_tokens, 0, false, s.max_len).all_batches();
  const int64_t steps = s.steps;
  io::h5::File f = io::h5::File::create(path);
  for (const auto& [key, value] : config.values()) f.write_attr_string("/", key, value);
  const std::pair<const char*, const std::vector<data::EncodedPair>*> splits[] = {
      {"train", &train}, {"valid", &valid}, {"test", &test}};
  for (const auto& [name, pairs] : splits) {
    examples::write_ragged(f, std::string(name) + "/src", id_rows(*pairs, true));
    examples::write_ragged(f, std::string(name) + "/tgt", id_rows(*pairs, false));
  }
  examples::write_strings(f, "test/src_text", sides(corpus.splits.test, true));
  examples::write_strings(f, "test/ref_text", sides(corpus.splits.test, false));
  examples::write_strings(f, "vocab/src", examples::token_pieces(*corpus.src_tok));
  examples::write_strings(f, "vocab/tgt", examples::token_pieces(*corpus.tgt_tok));
  std::vector<std::vector<int64_t>> rows;
  for (int64_t i = 0; i < steps; ++i) rows.push_back(batcher.next().indices);
  examples::write_ragged(f, "train_batches", rows);
  rows.clear();
  for (const auto& b : valid_batches) rows.push_back(b.indices);
  examples::write_ragged(f, "valid_batches", rows);
}

// What a BLEU score is made of: where a model falls short (few longer
// n-grams right, or translations too short) shows here, not in the score.
std::string bleu_parts(const data::BleuScore& b) {
  return fmt::format("(1-4-gram precisions {:.1f}/{:.1f}/{:.1f}/{:.1f}, brevity penalty {:.3f}, length {}/{})",
                     b.precisions[0], b.precisions[1], b.precisions[2], b.precisions[3], b.brevity_penalty,
                     b.hyp_len, b.ref_len);
}

// The test set's BLEU, greedy and (with r.beam > 1) beam search, and the first
// r.show translations; what says which model this is.
void report_test(const std::vector<nn::Seq2SeqTransformer*>& models, const Corpus& corpus, const TrainSettings& s,
                 const RunOptions& r, Device device, const std::string& what) {
  const bool valid = r.split == "valid";
  const std::vector<data::SentencePair>& pairs = valid ? corpus.splits.valid : corpus.splits.test;
  const auto test_src = sides(pairs, true), test_ref = sides(pairs, false);
  const bool split_joined = joined_apart(r.split_joined, s);
  const auto greedy = translate(models, corpus, test_src, 1, 0, s.max_len, split_joined, device);
  const auto bleu_greedy = data::corpus_bleu(greedy, test_ref);
  fmt::print("\n{} set ({} sentences), {}:\n", valid ? "validation" : "test", test_src.size(), what);
  fmt::print("  BLEU greedy      {:.2f}   {}\n", bleu_greedy.bleu, bleu_parts(bleu_greedy));
  if (!r.hyp_out.empty()) {
    std::ofstream hyp(r.hyp_out);
    for (const auto& line : greedy) hyp << line << '\n';
    HEED_CHECK(hyp.good(), "--hyp-out {}: cannot write", r.hyp_out);
  }
  std::vector<std::string> shown = greedy;
  if (r.beam > 1) {
    // On the whole test set, or on its first --beam-sentences sentences with
    // greedy on the same ones beside it.
    const size_t n = r.beam_sentences > 0 ? std::min<size_t>(r.beam_sentences, test_src.size()) : test_src.size();
    const std::vector<std::string> src_n(test_src.begin(), test_src.begin() + n), ref_n(test_ref.begin(), test_ref.begin() + n);
    const auto beam = translate(models, corpus, src_n, r.beam, r.length_penalty, s.max_len, split_joined, device);
    if (n == test_src.size()) {
      const auto bleu_beam = data::corpus_bleu(beam, ref_n);
      fmt::print("  BLEU beam {}      {:.2f}   {}\n", r.beam, bleu_beam.bleu, bleu_parts(bleu_beam));
    } else {
      const std::vector<std::string> greedy_n(greedy.begin(), greedy.begin() + n);
      fmt::print("  on the first {} test sentences: BLEU greedy {:.2f}, BLEU beam {} {:.2f}\n", n,
                 data::corpus_bleu(greedy_n, ref_n).bleu, r.beam, data::corpus_bleu(beam, ref_n).bleu);
    }
    shown = beam;
  }
  fmt::print("\nsome {} translations{}:\n", valid ? "validation" : "test",
             r.beam > 1 ? fmt::format(" (beam {})", r.beam) : "");
  for (int64_t i = 0; i < std::min<int64_t>(r.show, test_src.size()); ++i)
    fmt::print("  de:   {}\n  ref:  {}\n  heed: {}\n\n", test_src[i], test_ref[i], shown[i]);
}

int run_train(TrainSettings s, const RunOptions& r) {
  std::optional<io::Checkpoint> resumed;
  const Device device = examples::start_run(r, resumed);
  if (resumed) s = from_config(Config(resumed->config));
  const examples::Precision precision = examples::precision_from_flag(s.precision, device);
  manual_seed(static_cast<uint64_t>(s.seed));

  Corpus corpus;
  auto pairs = read_pairs(s);
  corpus.splits = data::split_pairs(pairs, s.valid_fraction, s.test_fraction, data_seed(s));
  examples::say("{} sentence pairs: {} train, {} valid, {} test\n", pairs.size(), corpus.splits.train.size(),
             corpus.splits.valid.size(), corpus.splits.test.size());
  if (s.train_joined_apart) {
    // After the split, so validation and test stay the whole sentences.
    std::vector<data::SentencePair> held_out = corpus.splits.valid;
    held_out.insert(held_out.end(), corpus.splits.test.begin(), corpus.splits.test.end());
    const size_t before = corpus.splits.train.size();
    corpus.splits.train = data::split_joined_pairs(corpus.splits.train, held_out);
    examples::say("joined sentences apart: {} training pairs (were {})\n", corpus.splits.train.size(), before);
  }
  if (resumed) {
    Corpus saved = tokenizers_of(*resumed);
    corpus.src_tok = std::move(saved.src_tok), corpus.tgt_tok = std::move(saved.tgt_tok);
  } else if (s.shared_vocab) {
    HEED_CHECK(s.src_vocab_size == 0 || s.src_vocab_size == s.vocab_size,
               "--shared-vocab trains one vocabulary of --vocab-size {}; --src-vocab-size {} cannot differ from it",
               s.vocab_size, s.src_vocab_size);
    // One vocabulary learnt from both sides: names, numbers and shared
    // word pieces get one embedding whichever language they appear in.
    auto texts = sides(corpus.splits.train, true);
    auto targets = sides(corpus.splits.train, false);
    texts.insert(texts.end(), targets.begin(), targets.end());
    corpus.src_tok = train_tokenizer(s, texts, s.vocab_size);
    corpus.tgt_tok = data::deserialize_tokenizer(corpus.src_tok->kind(), corpus.src_tok->serialize());
  } else {
    // The source vocabulary may be larger at almost no cost (an embedding
    // lookup); the target's sets the width of the output layer.
    corpus.src_tok = train_tokenizer(s, sides(corpus.splits.train, true),
                                     s.src_vocab_size > 0 ? s.src_vocab_size : s.vocab_size);
    corpus.tgt_tok = train_tokenizer(s, sides(corpus.splits.train, false), s.vocab_size);
  }
  examples::say("{} tokenizers: source vocabulary {}, target vocabulary {}\n", s.tokenizer,
             corpus.src_tok->vocab_size(), corpus.tgt_tok->vocab_size());
  std::vector<data::EncodedPair> train_pairs = encode(corpus.splits.train, corpus);
  // The training sentences as text, which BPE-dropout segments afresh; kept only for it.
  std::vector<data::SentencePair> train_texts;
  if (s.bpe_dropout > 0) train_texts = corpus.splits.train;
  if (s.dictionary_phrases != 0) {
    HEED_CHECK(s.task.empty() && !is_tsv(s.data),
               "--dictionary-phrases reads the Ding dictionary's entries: it needs --data to be the Ding file, not "
               "a .tsv or a --task");
    std::vector<data::SentencePair> held_out = corpus.splits.valid;
    held_out.insert(held_out.end(), corpus.splits.test.begin(), corpus.splits.test.end());
    std::vector<data::SentencePair> entries = data::read_ding_phrases(s.data, held_out);
    if (s.dictionary_phrases > 0 && s.dictionary_phrases < static_cast<int64_t>(entries.size())) {
      data::SplitMix64 rng(static_cast<uint64_t>(s.seed));
      data::seeded_shuffle(entries, rng);
      entries.resize(static_cast<size_t>(s.dictionary_phrases));
    }
    const auto phrases = encode(entries, corpus);
    train_pairs.insert(train_pairs.end(), phrases.begin(), phrases.end());
    if (s.bpe_dropout > 0) train_texts.insert(train_texts.end(), entries.begin(), entries.end());
    examples::say("dictionary words and phrases: {} more training pairs\n", phrases.size());
  }

  // --export-data is written after training, once a time budget has fixed
  // the run's length; the training pairs and initial weights are kept for it.
  std::vector<data::EncodedPair> export_pairs;
  if (!r.export_data.empty()) export_pairs = train_pairs;
  data::TranslationBatcher train(std::move(train_pairs), s.max_tokens, static_cast<uint64_t>(s.seed), true, s.max_len);
  HEED_CHECK(r.export_data.empty() || (s.src_word_dropout == 0 && s.tgt_word_dropout == 0),
             "--export-data: bench/translate_torch.py has no word dropout, so it cannot replay a run with "
             "--word-dropout {} / --target-word-dropout {}: export with both 0", s.src_word_dropout, s.tgt_word_dropout);
  if (s.bpe_dropout > 0) {
    HEED_CHECK(s.tokenizer == "bpe", "--bpe-dropout {} needs --tokenizer bpe (a {} tokenizer has one segmentation "
               "only)", s.bpe_dropout, s.tokenizer);
    HEED_CHECK(r.export_data.empty(), "--export-data writes one segmentation per sentence, so it cannot replay a run "
               "with --bpe-dropout {}: export with --bpe-dropout 0", s.bpe_dropout);
    // A pure function of (seed, example, epoch), so a resumed run draws the same segmentations.
    train.set_resample([&, seed = static_cast<uint64_t>(s.seed)](int64_t i, int64_t epoch) {
      const uint64_t key = data::hash_counter(seed ^ 0xb9e0d40bull, static_cast<uint64_t>(i), static_cast<uint64_t>(epoch));
      const data::SentencePair& p = train_texts[static_cast<size_t>(i)];
      return data::EncodedPair{corpus.src_tok->encode_sampled(p.src, s.bpe_dropout, key),
                               corpus.tgt_tok->encode_sampled(p.tgt, s.bpe_dropout, data::mix64(key))};
    });
  }
  auto valid_batches =
      data::TranslationBatcher(encode(corpus.splits.valid, corpus), s.max_tokens, 0, false, s.max_len).all_batches();
  const std::vector<int64_t> valid_words = words_per_target(corpus.splits.valid);

  nn::Seq2SeqTransformer model(model_options(s, corpus.src_tok->vocab_size(), corpus.tgt_tok->vocab_size()));
  const nn::NamedTensors initial_parameters =
      r.export_data.empty() ? nn::NamedTensors{} : examples::copy_parameters(model.named_parameters());
  model.to(device);
  examples::say("Seq2SeqTransformer: {} parameters, d_model {}, {}+{} layers, {} heads, ff {}, precision {}\n",
             model.num_parameters(), s.d_model, s.encoder_layers, s.decoder_layers, s.nhead, s.ff,
             examples::precision_name(precision));
  // Training, evaluation and the test translations all run in the chosen precision.
  const auto autocast = examples::use_precision(precision, device);
  optim::AdamWOptions ao;
  ao.lr = s.lr, ao.beta1 = 0.9, ao.beta2 = 0.98, ao.eps = 1e-9, ao.weight_decay = s.weight_decay;
  examples::Optimization training(model, ao, s, resumed ? &*resumed : nullptr);

  Config config = to_config(s, corpus.src_tok->vocab_size(), corpus.tgt_tok->vocab_size());
  config.set("src_tokenizer_kind", corpus.src_tok->kind());
  config.set("tgt_tokenizer_kind", corpus.tgt_tok->kind());
  int64_t step = 0;
  double best_valid = INFINITY;
  if (resumed) {
    step = resumed->training.at("step");
    train.set_position(resumed->training.at("data_position"));
    if (resumed->config.count("best_valid_loss")) best_valid = std::stod(resumed->config.at("best_valid_loss"));
  }
  auto save = [&](const std::string& name) {
    if (!examples::writes()) return;  // rank 0 keeps the run
    io::Checkpoint c = training.capture(config);
    c.config["best_valid_loss"] = fmt::format("{:.17g}", best_valid);
    c.texts["src_tokenizer"] = corpus.src_tok->serialize();
    c.texts["tgt_tokenizer"] = corpus.tgt_tok->serialize();
    c.training["step"] = step;
    c.training["data_position"] = train.position();
    c.training["epoch"] = train.epoch();
    c.training["world_size"] = examples::world_size();
    io::save_checkpoint((fs::path(r.out) / name).string(), c);
  };

  examples::TrainLog log((fs::path(r.out) / r.log).string(),
                         {"step", "epoch", "train_loss", "lr", "tokens_per_s", "elapsed_s", "valid_loss", "valid_loss_per_word",
                          "valid_bleu"},
                         resumed.has_value());
  examples::Curve train_curve{"train loss (label-smoothed)", {}, {}}, valid_curve{"validation loss", {}, {}};
  examples::Progress progress(training.length.steps(), r.time_limit, 50);
  const auto valid_src = sides(corpus.splits.valid, true, r.bleu_subset);
  const auto valid_ref = sides(corpus.splits.valid, false, r.bleu_subset);
  nn::CrossEntropyOptions loss_opts;
  loss_opts.ignore_index = data::kPad;
  loss_opts.label_smoothing = s.label_smoothing;
  model.train();
  double window_loss = 0;
  int64_t window_steps = 0;
  examples::StepTimes step_times;
  // Validation loss and BLEU at the current step, logged and plotted; a new
  // best is saved as best.h5.
  auto evaluate_now = [&] {
    if (!examples::writes()) return;  // rank 0 evaluates; the others wait for it in the next step's reduction
    // With --ema the averages are evaluated, and swapped out again before
    // best.h5 is saved (a checkpoint holds the weights and the averages apart).
    std::optional<optim::ExponentialMovingAverage::Swap> averaged;
    if (training.ema) averaged.emplace(*training.ema);
    const ValidationLoss valid = evaluate_loss(model, valid_batches, valid_words, device);
    const double v = valid.per_token;
    const double bleu =
        data::corpus_bleu(translate({&model}, corpus, valid_src, 1, 0, s.max_len, s.split_joined, device), valid_ref).bleu;
    averaged.reset();
    progress.message(fmt::format("step {}: train loss {:.3f}, validation loss {:.3f} nats/token ({:.3f} nats/word), "
                                 "validation BLEU (greedy, {} sentences) {:.2f}",
                                 step, window_loss / window_steps, v, valid.per_word, valid_src.size(), bleu));
    log.write({{"step", double(step)}, {"epoch", double(train.epoch())}, {"train_loss", window_loss / window_steps},
               {"lr", training.opt.lr()}, {"tokens_per_s", progress.tokens_per_s()}, {"elapsed_s", progress.elapsed_s()},
               {"valid_loss", v}, {"valid_loss_per_word", valid.per_word}, {"valid_bleu", bleu}});
    train_curve.x.push_back(step), train_curve.y.push_back(window_loss / window_steps);
    valid_curve.x.push_back(step), valid_curve.y.push_back(v);
    window_loss = 0, window_steps = 0;
    if (v < best_valid) {
      best_valid = v;
      save("best.h5");
    }
  };
  // Every rank builds each global batch and trains on its parts of it
  // (examples/common/ranks.h): `parts` of them per step over all ranks.
  const int64_t world = examples::world_size(), parts = world * r.accumulate;
  bool out_of_time = false;  // agreed by every rank
  while (training.length.more(step)) {
    if (out_of_time) {
      progress.message(fmt::format("time limit of {} reached at step {}", examples::format_duration(r.time_limit), step));
      break;
    }
    if (r.stop_at > 0 && step >= r.stop_at) {
      progress.message(fmt::format("stopping at step {} as asked (--stop-at)", step));
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    data::TranslationBatch b = train.next();
    const double own_loss = training.step(r.accumulate, [&](int64_t m) {
      const data::TranslationBatch part = parts == 1 ? b : data::take_part(b, m * world + examples::rank(), parts);
      if (part.num_tgt_tokens == 0) return Tensor();
      Tensor logits =
          model.forward(part.src.to(device), part.tgt_in.to(device), part.src_pad.to(device), part.tgt_pad.to(device));
      if (parts == 1) return nn::cross_entropy(logits, part.tgt_out.to(device), loss_opts);
      // A part's share of the global batch's mean: its sum over the batch's tokens.
      nn::CrossEntropyOptions summed = loss_opts;
      summed.reduction = nn::Reduction::Sum;
      return mul(nn::cross_entropy(logits, part.tgt_out.to(device), summed), 1.0 / static_cast<double>(b.num_tgt_tokens));
    });
    ++step;
    // The ranks agree on the batch's loss, the step's time (for a time
    // budget's fit) and whether time is up.
    const examples::AgreedStep agreed = examples::agree_on_step(
        own_loss, std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count(),
        r.time_limit > 0 && progress.elapsed_s() >= r.time_limit);
    const double l = agreed.loss, step_seconds = agreed.seconds;
    out_of_time = agreed.out_of_time;
    step_times.record(step_seconds, b.num_tgt_tokens, l);
    training.length.record(step, step_seconds, training.schedule, progress);
    window_loss += l, ++window_steps;
    progress.update(step, l, training.opt.lr(), b.num_tgt_tokens);
    const bool last = !training.length.more(step);  // the fitted total, or a spent time budget
    if (step % r.eval_every == 0 || last) evaluate_now();
    if (step % r.save_every == 0 || last) save("last.h5");
  }
  // Stopped early (time limit, --stop-at): the model as it stands is
  // evaluated and kept too, so neither the final report nor a resume misses
  // the steps since the last scheduled evaluation or save.
  if (window_steps > 0) {
    evaluate_now();
    save("last.h5");
  }
  progress.finish();
  if (cpu::profiling_enabled()) examples::say("time per CPU kernel (HEED_PROFILE):\n{}\n", cpu::profile_report());
  step_times.print("target tokens", training.data_parallel_stats());
  examples::say("{}\n", examples::device_memory_summary(device));
  save("last.h5");
  if (!r.export_data.empty()) {
    HEED_CHECK(training.length.steps() > 0, "--export-data: the run stopped before its time budget fixed its length, so there "
               "is no schedule to export");
    TrainSettings exported = s;
    exported.steps = training.length.steps();
    export_data(r.export_data, exported, corpus, export_pairs, encode(corpus.splits.valid, corpus));
    examples::write_initial_parameters(r.export_data, initial_parameters);
    examples::say("exported the data, the initial weights and the {} batches of the schedule to {}\n",
               exported.steps, r.export_data);
  }
  examples::write_svg_plot((fs::path(r.out) / "loss.svg").string(), "translate: loss", "step", "nats per token",
                           {train_curve, valid_curve});
  if (!examples::writes()) return 0;  // rank 0 reports

  // Test set: the best checkpoint's BLEU, greedy and beam, and a handful of translations.
  // (With --ema: its averaged weights, which validation chose it by.)
  if (fs::exists(fs::path(r.out) / "best.h5"))
    io::restore_for_evaluation(io::load_checkpoint((fs::path(r.out) / "best.h5").string()), model);
  report_test({&model}, corpus, s, r, device,
              fmt::format("best checkpoint{} (validation loss {:.3f})",
                          training.ema ? fmt::format(", averaged weights (--ema {})", s.ema) : "", best_valid));
  fmt::print("checkpoints, log and loss plot in {}/\n", r.out);
  return 0;
}

// ---- bleu ----------------------------------------------------------------------------

// Scores a file of translations with heed's corpus BLEU, so that another
// framework's output (bench/translate_torch.py) is scored by the same code.
int run_bleu(const std::string& hyp_file, const std::string& ref_file) {
  const auto hyp = data::read_lines(hyp_file), ref = data::read_lines(ref_file);
  HEED_CHECK(hyp.size() == ref.size(), "bleu: {} has {} lines but {} has {}", hyp_file, hyp.size(), ref_file,
             ref.size());
  const data::BleuScore b = data::corpus_bleu(hyp, ref);
  fmt::print("BLEU {:.2f} ({:.1f}/{:.1f}/{:.1f}/{:.1f}, brevity penalty {:.3f}, {} hypothesis and {} reference tokens)\n",
             b.bleu, b.precisions[0], b.precisions[1], b.precisions[2], b.precisions[3], b.brevity_penalty, b.hyp_len,
             b.ref_len);
  return 0;
}

// ---- test ----------------------------------------------------------------------------

// The models of `--ensemble` beside a checkpoint's own: each restored as the
// checkpoint is (its averaged weights when it has them), on the device. They
// must tokenize as the first checkpoint does and, for `test`, have been
// trained on the same data split (else the test sentences of one could be
// training sentences of another): an error names the first difference.
std::vector<std::unique_ptr<nn::Seq2SeqTransformer>> ensemble_members(const io::Checkpoint& first,
                                                                      const std::vector<std::string>& paths,
                                                                      bool same_split, Device device) {
  std::vector<std::unique_ptr<nn::Seq2SeqTransformer>> members;
  const TrainSettings f = from_config(Config(first.config));
  for (const std::string& path : paths) {
    const io::Checkpoint ckpt = examples::load_checkpoint_of(path, "translate", "a translate");
    const Config config(ckpt.config);
    const TrainSettings s = from_config(config);
    if (same_split) {
      const std::pair<const char*, std::pair<std::string, std::string>> split_settings[] = {
          {"--data", {s.data, f.data}},
          {"--task", {s.task, f.task}},
          {"split seed", {std::to_string(data_seed(s)), std::to_string(data_seed(f))}},
          {"validation fraction", {fmt::format("{}", s.valid_fraction), fmt::format("{}", f.valid_fraction)}},
          {"test fraction", {fmt::format("{}", s.test_fraction), fmt::format("{}", f.test_fraction)}}};
      for (const auto& [what, values] : split_settings)
        HEED_CHECK(values.first == values.second,
                   "--ensemble {}: its {} is '{}', the first checkpoint's '{}': its test split would differ (and "
                   "could hold the other models' training sentences; train ensemble members with one --split-seed)",
                   path, what, values.first, values.second);
    }
    for (const char* key : {"src_tokenizer_kind", "tgt_tokenizer_kind"})
      HEED_CHECK(ckpt.config.at(key) == first.config.at(key),
                 "--ensemble {}: its {} is {}, the first checkpoint's {}: ensemble members must share tokenizers",
                 path, key, ckpt.config.at(key), first.config.at(key));
    for (const char* key : {"src_tokenizer", "tgt_tokenizer"})
      HEED_CHECK(ckpt.texts.at(key) == first.texts.at(key),
                 "--ensemble {}: its {} differs from the first checkpoint's: ensemble members must share tokenizers "
                 "(train them with the same --data, --split-seed, --tokenizer and vocabulary sizes)",
                 path, key);
    auto model = std::make_unique<nn::Seq2SeqTransformer>(
        model_options(s, config.integer("src_vocab"), config.integer("tgt_vocab")));
    io::restore_for_evaluation(ckpt, *model);
    model->to(device);
    members.push_back(std::move(model));
  }
  return members;
}

std::vector<nn::Seq2SeqTransformer*> all_models(nn::Seq2SeqTransformer& first,
                                                const std::vector<std::unique_ptr<nn::Seq2SeqTransformer>>& rest) {
  std::vector<nn::Seq2SeqTransformer*> out{&first};
  for (const auto& m : rest) out.push_back(m.get());
  return out;
}

// The test report of `train` for a checkpoint, with other decoding settings:
// the split is made again from the checkpoint's data, seed and fractions.
int run_test(const std::string& checkpoint, const std::vector<std::string>& ensemble, const RunOptions& r) {
  if (r.threads > 0) cpu::set_num_threads(static_cast<int>(r.threads));
  const Device device = examples::device_from_flag(r.device);
  const io::Checkpoint ckpt = examples::load_checkpoint_of(checkpoint, "translate", "a translate");
  const Config config(ckpt.config);
  const TrainSettings s = from_config(config);
  Corpus corpus = tokenizers_of(ckpt);
  corpus.splits = data::split_pairs(read_pairs(s), s.valid_fraction, s.test_fraction, data_seed(s));
  nn::Seq2SeqTransformer model(model_options(s, config.integer("src_vocab"), config.integer("tgt_vocab")));
  const bool averaged = io::restore_for_evaluation(ckpt, model);
  model.to(device);
  const auto members = ensemble_members(ckpt, ensemble, true, device);
  const auto autocast = examples::use_precision(examples::precision_from_flag(s.precision, device), device);
  report_test(all_models(model, members), corpus, s, r, device,
              fmt::format("{}{}{}, beam {}, length penalty {}", checkpoint, averaged ? " (averaged weights)" : "",
                          ensemble.empty() ? "" : fmt::format(" in an ensemble with {}", fmt::join(ensemble, ", ")),
                          r.beam, r.length_penalty));
  return 0;
}

// ---- decode --------------------------------------------------------------------------

int run_decode(const std::string& checkpoint, const std::vector<std::string>& ensemble,
               std::vector<std::string> sentences, const std::string& file, int64_t beam, double length_penalty,
               int64_t split_joined, const std::string& device_name) {
  const Device device = examples::device_from_flag(device_name);
  io::Checkpoint ckpt = examples::load_checkpoint_of(checkpoint, "translate", "a translate");
  Config config(ckpt.config);
  const TrainSettings s = from_config(config);
  Corpus corpus = tokenizers_of(ckpt);
  nn::Seq2SeqTransformer model(model_options(s, config.integer("src_vocab"), config.integer("tgt_vocab")));
  io::restore_for_evaluation(ckpt, model);
  model.to(device);
  const auto members = ensemble_members(ckpt, ensemble, false, device);
  if (!file.empty()) {
    // "-": standard input, so that decode can sit in a pipe.
    auto lines = file == "-" ? data::read_lines(std::cin) : data::read_lines(file);
    sentences.insert(sentences.end(), lines.begin(), lines.end());
  }
  HEED_CHECK(!sentences.empty(), "nothing to translate: give sentences or --file");
  for (const auto& t : translate(all_models(model, members), corpus, sentences, beam, length_penalty, s.max_len,
                                 joined_apart(split_joined, s), device))
    fmt::print("{}\n", t);
  return 0;
}

// --ensemble: one file a flag, the flag repeated (or files separated by
// commas); one file only, so that sentences after it stay sentences.
void add_ensemble_flag(CLI::App& app, std::vector<std::string>& files, const char* needs) {
  app.add_option("--ensemble", files,
                 fmt::format("another checkpoint ({}) whose model decodes with the first as an ensemble, averaging "
                             "their next-token probabilities; repeat the flag or separate files with commas",
                             needs))
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->delimiter(',')
      ->check(CLI::ExistingFile);
}

// test / decode: the checkpoint's way with joined sentences unless one is asked for.
void add_split_joined_flag(CLI::App& app, int64_t& split_joined) {
  CLI::Option* apart = app.add_flag_callback(
      "--split-joined", [&split_joined] { split_joined = 1; },
      "translate the sentences a source joins with '; ' one by one (default: as the checkpoint was trained)");
  CLI::Option* whole = app.add_flag_callback(
      "--whole-sentences", [&split_joined] { split_joined = 0; },
      "translate a source that joins sentences with '; ' whole (default: as the checkpoint was trained)");
  apart->excludes(whole);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"heed translate: train a Transformer translation model and translate with it"};
  examples::configure_app(app);

  TrainSettings s;
  RunOptions r;
  CLI::App* train = app.add_subcommand("train", "train a Seq2SeqTransformer, then report test BLEU");
  train->add_option("--data", s.data, "Ding dictionary file or a .tsv of 'source<TAB>target' lines")->capture_default_str();
  train->add_option("--task", s.task, "synthetic task instead of --data")->check(CLI::IsMember({"copy", "reverse", "sort"}));
  train->add_option("--tokenizer", s.tokenizer, "bpe, word or char")->check(CLI::IsMember({"bpe", "word", "char"}))->capture_default_str();
  train->add_option("--vocab-size", s.vocab_size, "BPE vocabulary size (word: cap, 0 = none)")->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--src-vocab-size", s.src_vocab_size, "the source side's vocabulary size, when it differs (0 = --vocab-size)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--d-model", s.d_model, "model width")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--heads", s.nhead, "attention heads")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--encoder-layers", s.encoder_layers)->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--decoder-layers", s.decoder_layers)->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--ff", s.ff, "feed-forward width")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_flag("--norm-first,!--post-norm", s.norm_first, "pre-norm layers (LayerNorm before attention and feed-forward)");
  train->add_flag("--shared-vocab,!--separate-vocab", s.shared_vocab,
                  "one tokenizer trained on both languages, and one embedding table for source and target");
  train->add_flag("--tie-output,!--untied-output", s.tie_output,
                  "the output layer is the target embedding table (no separate output weights)");
  train->add_option("--dictionary-phrases", s.dictionary_phrases,
                    "train on this many of the Ding dictionary's word and phrase entries too (a seeded sample; -1: "
                    "all), not only its example sentences (entries of validation and test sentences left out)")
      ->check(CLI::Range(int64_t{-1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  train->add_flag("--split-joined,!--whole-sentences", s.split_joined,
                  "translate a source that joins sentences with '; ' sentence by sentence, the translations joined "
                  "with '; ' (validation BLEU and the test report); --whole-sentences translates it whole");
  train->add_flag("--train-joined-apart", s.train_joined_apart,
                  "train on the sentences that a pair's sides join with '; ' as pairs of their own (by position)");
  train->add_option("--split-seed", s.split_seed,
                    "seed of the data split (and of a --task's pairs) when it should differ from --seed; runs that "
                    "share it share the split and tokenizers, so their checkpoints can decode as an --ensemble "
                    "(-1: --seed)")
      ->check(CLI::Range(int64_t{-1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  train->add_option("--dropout", s.dropout)->check(CLI::Range(0.0, 0.99))->capture_default_str();
  train->add_option("--label-smoothing", s.label_smoothing)->check(CLI::Range(0.0, 0.99))->capture_default_str();
  train->add_option("--bpe-dropout", s.bpe_dropout,
                    "BPE-dropout: segment each training sentence afresh every epoch, leaving out each applicable "
                    "merge with this probability (subword regularisation; needs --tokenizer bpe)")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  train->add_option("--word-dropout", s.src_word_dropout,
                    "word dropout: zero each training source token's whole embedding with this probability (the "
                    "rest scaled by 1/(1-p))")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  train->add_option("--target-word-dropout", s.tgt_word_dropout,
                    "word dropout on the decoder's input tokens (the target sentence shifted right)")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  train->add_option("--max-tokens", s.max_tokens, "padded tokens per batch")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--max-len", s.max_len, "longest sentence in tokens (longer training pairs are dropped)")->check(CLI::PositiveNumber)->capture_default_str();
  const examples::TrainFlags train_flags(*train, s, "translate");
  examples::add_run_flags(*train, r);
  train->add_option("--beam", r.beam, "beam size for the test translations (1 = greedy only)")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--length-penalty", r.length_penalty)->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--beam-sentences", r.beam_sentences, "test sentences decoded with beam search (0 = all)")->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--show", r.show, "test translations to print")->check(CLI::NonNegativeNumber)->capture_default_str();
  train->add_option("--export-data", r.export_data,
                    "after training, write the encoded data, vocabularies, initial weights and the batches of "
                    "every step of the schedule to this HDF5 file (for bench/translate_torch.py)");
  train->add_option("--hyp-out", r.hyp_out, "write the greedy test translations to this file, one per line");

  std::string checkpoint, file, device = "cpu";
  std::vector<std::string> sentences, ensemble;
  int64_t beam = 4;
  double length_penalty = kDefaultLengthPenalty;
  CLI::App* decode = app.add_subcommand("decode", "translate sentences with a trained checkpoint");
  decode->add_option("-c,--checkpoint", checkpoint, "a checkpoint written by 'translate train'")->required()->check(CLI::ExistingFile);
  decode->add_option("sentences", sentences, "sentences to translate");
  decode->add_option("--file", file, "a file of sentences, one per line ('-': standard input)")
      ->check(CLI::ExistingFile | CLI::IsMember({"-"}));
  decode->add_option("--beam", beam, "beam size (1 = greedy)")->check(CLI::PositiveNumber)->capture_default_str();
  decode->add_option("--length-penalty", length_penalty)->check(CLI::NonNegativeNumber)->capture_default_str();
  add_ensemble_flag(*decode, ensemble, "same tokenizers");
  int64_t decode_split_joined = -1;
  add_split_joined_flag(*decode, decode_split_joined);
  examples::add_device_flag(*decode, device);

  RunOptions t;
  CLI::App* test = app.add_subcommand("test", "the test-set report of 'train' for a checkpoint, with other decoding settings");
  test->add_option("-c,--checkpoint", checkpoint, "a checkpoint written by 'translate train'")->required()->check(CLI::ExistingFile);
  test->add_option("--beam", t.beam, "beam size (1 = greedy only)")->check(CLI::PositiveNumber)->capture_default_str();
  test->add_option("--length-penalty", t.length_penalty)->check(CLI::NonNegativeNumber)->capture_default_str();
  test->add_option("--beam-sentences", t.beam_sentences, "test sentences decoded with beam search (0 = all)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  test->add_option("--show", t.show, "test translations to print")->check(CLI::NonNegativeNumber)->capture_default_str();
  test->add_option("--hyp-out", t.hyp_out, "write the greedy test translations to this file, one per line");
  test->add_option("--split", t.split,
                   "the sentences to score: test, or valid (the whole validation split: choose decoding settings "
                   "such as --length-penalty there, not on the test set)")
      ->check(CLI::IsMember({"test", "valid"}))
      ->capture_default_str();
  add_ensemble_flag(*test, ensemble, "same tokenizers and data split");
  add_split_joined_flag(*test, t.split_joined);
  examples::add_threads_flag(*test, t.threads);
  examples::add_device_flag(*test, t.device);

  std::string hyp_file, ref_file;
  CLI::App* bleu = app.add_subcommand("bleu", "corpus BLEU of a file of translations against a file of references");
  bleu->add_option("--hyp", hyp_file, "translations, one per line")->required()->check(CLI::ExistingFile);
  bleu->add_option("--ref", ref_file, "references, one per line")->required()->check(CLI::ExistingFile);

  return examples::run_main(app, argc, argv, "translate", [&] {
    if (*train) {
      train_flags.resolve(r);
      return examples::run_ranks("translate", r.threads, [&] { return run_train(s, r); });
    }
    if (*bleu) return run_bleu(hyp_file, ref_file);
    if (*test) return run_test(checkpoint, ensemble, t);
    return run_decode(checkpoint, ensemble, sentences, file, beam, length_penalty, decode_split_joined, device);
  });
}
