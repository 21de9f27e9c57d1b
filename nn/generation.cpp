#include "nn/generation.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "tensor/grad_mode.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace heed::nn {

namespace {

// Puts a module in eval mode for the scope and restores its mode after.
class EvalScope {
 public:
  explicit EvalScope(Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalScope() { m_.train(was_training_); }

 private:
  Module& m_;
  bool was_training_;
};

void check_source(const Tensor& src, const Tensor& src_pad, const char* fn) {
  HEED_CHECK(src.defined() && src.dim() == 2 && src.dtype() == DType::Int64, "{}: expected src int64 [B, S], got {}",
             fn, src.defined() ? shape_str(src.shape()) : std::string("undefined"));
  HEED_CHECK(!src_pad.defined() || (src_pad.dtype() == DType::Bool && src_pad.shape() == src.shape()),
             "{}: src_pad must be bool of src's shape {}, got {}", fn, shape_str(src.shape()),
             shape_str(src_pad.shape()));
}

// Tokens allowed for row b: the DecodeOptions limit, scaled by the source length when asked.
std::vector<int64_t> length_limits(const Tensor& src, const Tensor& src_pad, const DecodeOptions& o) {
  HEED_CHECK(o.max_len > 0, "decode: max_len must be positive, got {}", o.max_len);
  const int64_t B = src.size(0), S = src.size(1);
  std::vector<int64_t> limits(B, o.max_len);
  if (o.max_len_a <= 0 && o.max_len_b <= 0) return limits;
  std::vector<uint8_t> pad = src_pad.defined() ? src_pad.to(kCPU).to(DType::UInt8).to_vector<uint8_t>()
                                               : std::vector<uint8_t>(B * S, 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = 0;
    for (int64_t s = 0; s < S; ++s) len += pad[b * S + s] ? 0 : 1;
    const auto scaled = static_cast<int64_t>(o.max_len_a * static_cast<double>(len)) + o.max_len_b;
    limits[b] = std::clamp<int64_t>(scaled, 1, o.max_len);
  }
  return limits;
}

// logits [R, V] with the banned tokens' entries at -inf. The mask is built on
// the first call (V is known then) and reused.
Tensor without_banned(const Tensor& logits, const std::vector<int64_t>& banned, Tensor& mask) {
  if (banned.empty()) return logits;
  const int64_t V = logits.size(-1);
  if (!mask.defined()) {
    std::vector<uint8_t> m(static_cast<size_t>(V), 0);
    for (int64_t id : banned) {
      HEED_CHECK(id >= 0 && id < V, "decode: banned token id {} is outside the vocabulary of {}", id, V);
      m[static_cast<size_t>(id)] = 1;
    }
    mask = from_vector<uint8_t>(m, {V}, logits.device()).to(DType::Bool);
  }
  return masked_fill(logits, mask, -INFINITY);
}

void reorder(DecoderCache& cache, const Tensor& rows) {
  for (auto* list : {&cache.self, &cache.cross})
    for (KVCache& c : *list)
      if (!c.empty()) c.k = index_select(c.k, 0, rows), c.v = index_select(c.v, 0, rows);
}

}  // namespace

std::vector<std::vector<int64_t>> greedy_decode(Seq2SeqTransformer& model, const Tensor& src, const Tensor& src_pad,
                                                const DecodeOptions& o) {
  check_source(src, src_pad, "greedy_decode");
  NoGradGuard no_grad;
  EvalScope eval(model);
  const int64_t B = src.size(0);
  const std::vector<int64_t> limits = length_limits(src, src_pad, o);
  const int64_t steps = *std::max_element(limits.begin(), limits.end());
  Tensor memory = model.encode(src, src_pad);
  DecoderCache cache;
  Tensor banned_mask;
  std::vector<std::vector<int64_t>> out(B);
  std::vector<bool> done(B, false);
  std::vector<int64_t> next(B, o.bos_id);
  for (int64_t step = 0; step < steps; ++step) {
    Tensor logits = model.decode(from_vector<int64_t>(next, {B, 1}, src.device()), memory, src_pad, {}, &cache);
    logits = without_banned(logits.select(1, 0), o.banned_ids, banned_mask);
    std::vector<int64_t> best = argmax(logits, -1).to(kCPU).to_vector<int64_t>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      if (best[b] == o.eos_id || static_cast<int64_t>(out[b].size()) + 1 >= limits[b]) {
        if (best[b] != o.eos_id) out[b].push_back(best[b]);
        done[b] = true;
      } else {
        out[b].push_back(best[b]);
        all_done = false;
      }
    }
    if (all_done) break;
    next = best;
  }
  return out;
}

// ---- beam search -----------------------------------------------------------------
//
// Every sentence keeps its own beam. The alive hypotheses of all sentences are
// the rows of one decoder batch, grouped by sentence in order (row_sentence[r]
// is row r's sentence), so the batch only shares the decoder passes: each
// sentence's search is the one-sentence beam search.

namespace {

struct Hypothesis {
  std::vector<int64_t> tokens;
  double logp = 0;
};

struct SentenceBeam {
  std::vector<Hypothesis> alive{Hypothesis{}};
  std::vector<std::pair<double, std::vector<int64_t>>> finished;  // (normalised score, tokens)
};

// GNMT length normalisation (BeamOptions::length_penalty).
double normalised(const BeamOptions& beam, double logp, size_t len) {
  return beam.length_penalty > 0 ? logp / std::pow((5.0 + static_cast<double>(len)) / 6.0, beam.length_penalty)
                                 : logp;
}

// The token each row feeds the decoder: its hypothesis's last (BOS at first).
std::vector<int64_t> last_tokens(const std::vector<SentenceBeam>& beams, const std::vector<int64_t>& row_sentence,
                                 int64_t bos_id) {
  std::vector<int64_t> last;
  last.reserve(row_sentence.size());
  for (size_t r = 0; r < row_sentence.size();) {
    const auto& alive = beams[row_sentence[r]].alive;
    for (const Hypothesis& h : alive) last.push_back(h.tokens.empty() ? bos_id : h.tokens.back());
    r += alive.size();
  }
  return last;
}

// The decoder side of the search: the encoded sources, the cache, one pass per
// step over the alive rows.
class BeamDecoder {
 public:
  BeamDecoder(Seq2SeqTransformer& model, const Tensor& src, const Tensor& src_pad, const DecodeOptions& o)
      : model_(model), src_pad_(src_pad), device_(src.device()), options_(o), memory_(model.encode(src, src_pad)) {}

  // log p of each row's next token after `last`, float64 on the CPU,
  // row-major [R, V] (V is vocab() from then on).
  std::vector<double> log_probs(const std::vector<int64_t>& row_sentence, const std::vector<int64_t>& last) {
    const auto R = static_cast<int64_t>(row_sentence.size());
    Tensor rows = from_vector<int64_t>(row_sentence, {R}, device_);
    Tensor pad = src_pad_.defined() ? index_select(src_pad_, 0, rows) : Tensor();
    // After the first step the memory's keys and values are in the cache
    // (reordered with the rows), so the memory itself is not read again.
    Tensor logits = model_.decode(from_vector<int64_t>(last, {R, 1}, device_), memory_, pad, {}, &cache_).select(1, 0);
    Tensor logp = log_softmax(without_banned(logits, options_.banned_ids, banned_mask_).to(DType::Float64), -1).to(kCPU);
    vocab_ = logp.size(1);
    return logp.to_vector<double>();
  }
  int64_t vocab() const { return vocab_; }

  // The next step's row r continues this step's row parents[r].
  void reorder_rows(const std::vector<int64_t>& parents) {
    reorder(cache_, from_vector<int64_t>(parents, {}, device_));
  }

 private:
  Seq2SeqTransformer& model_;
  Tensor src_pad_;
  Device device_;
  const DecodeOptions& options_;
  Tensor memory_;
  DecoderCache cache_;
  Tensor banned_mask_;
  int64_t vocab_ = 0;
};

// log((p_1 + ... + p_n) / n) element by element from the models' log p,
// without leaving log space (a -inf from one model, such as a banned token,
// is -inf only if every model gives it).
std::vector<double> mean_probability(const std::vector<std::vector<double>>& each) {
  const double log_n = std::log(static_cast<double>(each.size()));
  std::vector<double> out(each[0].size());
  for (size_t i = 0; i < out.size(); ++i) {
    double top = -INFINITY;
    for (const auto& lp : each) top = std::max(top, lp[i]);
    if (top == -INFINITY) {
      out[i] = -INFINITY;
      continue;
    }
    double sum = 0;
    for (const auto& lp : each) sum += std::exp(lp[i] - top);
    out[i] = top + std::log(sum) - log_n;
  }
  return out;
}

// Extends one sentence's beam by a step from `scores` (its n alive rows' log p,
// [n, V]). Continuations that end (EOS, or any at the last step) join the
// finished ones; the best K others become the alive ones, and `parents` gets
// the batch row each continues (first_row + its parent). Returns whether the
// search goes on: false once K have finished or, without length
// normalisation, when no alive one can beat the best finished one (the beam
// is then left as it was, for the fallback of best_tokens).
bool extend(SentenceBeam& beam, std::vector<double> scores, int64_t V, bool last_step, int64_t first_row,
            const BeamOptions& options, int64_t eos_id, std::vector<int64_t>& parents) {
  const int64_t K = options.beam_size;
  const auto n = static_cast<int64_t>(beam.alive.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t v = 0; v < V; ++v) scores[i * V + v] += beam.alive[i].logp;
  // The best 2K continuations: enough for K alive ones even if K of them end.
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  const auto keep = std::min<int64_t>(2 * K, static_cast<int64_t>(order.size()));
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int64_t x, int64_t y) { return scores[x] > scores[y] || (scores[x] == scores[y] && x < y); });
  std::vector<Hypothesis> next;
  std::vector<int64_t> next_parents;
  for (int64_t c = 0; c < keep && static_cast<int64_t>(next.size()) < K; ++c) {
    const int64_t parent = order[c] / V, token = order[c] % V;
    Hypothesis h{beam.alive[parent].tokens, scores[order[c]]};
    if (token == eos_id || last_step) {
      if (token != eos_id) h.tokens.push_back(token);
      beam.finished.emplace_back(normalised(options, h.logp, h.tokens.size() + 1), h.tokens);
      continue;
    }
    h.tokens.push_back(token);
    next.push_back(std::move(h));
    next_parents.push_back(first_row + parent);
  }
  bool stop = static_cast<int64_t>(beam.finished.size()) >= K;
  // log p only falls; with length normalisation this is the usual heuristic.
  if (!stop && !beam.finished.empty() && !next.empty() && options.length_penalty == 0) {
    double best_finished = -INFINITY;
    for (auto& f : beam.finished) best_finished = std::max(best_finished, f.first);
    stop = normalised(options, next[0].logp, next[0].tokens.size() + 1) < best_finished;
  }
  if (stop) return false;
  beam.alive = std::move(next);
  parents.insert(parents.end(), next_parents.begin(), next_parents.end());
  return true;
}

// The best finished hypothesis; a search that finished none falls back to its
// alive ones.
std::vector<int64_t> best_tokens(SentenceBeam& beam, const BeamOptions& options) {
  if (beam.finished.empty())
    for (auto& h : beam.alive) beam.finished.emplace_back(normalised(options, h.logp, h.tokens.size()), h.tokens);
  auto best = std::max_element(beam.finished.begin(), beam.finished.end(),
                               [](const auto& x, const auto& y) { return x.first < y.first; });
  return best == beam.finished.end() ? std::vector<int64_t>{} : best->second;
}

}  // namespace

std::vector<std::vector<int64_t>> beam_search(Seq2SeqTransformer& model, const Tensor& src, const Tensor& src_pad,
                                              const BeamOptions& beam, const DecodeOptions& o) {
  return beam_search(std::vector<Seq2SeqTransformer*>{&model}, src, src_pad, beam, o);
}

std::vector<std::vector<int64_t>> beam_search(const std::vector<Seq2SeqTransformer*>& models, const Tensor& src,
                                              const Tensor& src_pad, const BeamOptions& beam, const DecodeOptions& o) {
  check_source(src, src_pad, "beam_search");
  HEED_CHECK(beam.beam_size > 0, "beam_search: beam_size must be positive, got {}", beam.beam_size);
  HEED_CHECK(!models.empty(), "beam_search: the ensemble has no models");
  for (size_t m = 0; m < models.size(); ++m)
    HEED_CHECK(models[m] != nullptr, "beam_search: model {} of the ensemble is null", m);
  NoGradGuard no_grad;
  // One scope per distinct model (a model given twice must get its own mode back).
  std::vector<std::unique_ptr<EvalScope>> eval;
  for (size_t m = 0; m < models.size(); ++m)
    if (std::find(models.begin(), models.begin() + m, models[m]) == models.begin() + m)
      eval.push_back(std::make_unique<EvalScope>(*models[m]));
  const int64_t B = src.size(0);
  const std::vector<int64_t> limits = length_limits(src, src_pad, o);
  if (B == 0) return {};

  std::vector<SentenceBeam> beams(static_cast<size_t>(B));
  std::vector<std::unique_ptr<BeamDecoder>> decoders;
  for (Seq2SeqTransformer* m : models) decoders.push_back(std::make_unique<BeamDecoder>(*m, src, src_pad, o));
  std::vector<int64_t> row_sentence(static_cast<size_t>(B));
  std::iota(row_sentence.begin(), row_sentence.end(), 0);
  for (int64_t step = 0; !row_sentence.empty(); ++step) {
    const std::vector<int64_t> last = last_tokens(beams, row_sentence, o.bos_id);
    std::vector<double> logp = decoders[0]->log_probs(row_sentence, last);
    const int64_t V = decoders[0]->vocab();
    if (decoders.size() > 1) {
      std::vector<std::vector<double>> each{std::move(logp)};
      for (size_t m = 1; m < decoders.size(); ++m) {
        each.push_back(decoders[m]->log_probs(row_sentence, last));
        HEED_CHECK(decoders[m]->vocab() == V,
                   "beam_search: the ensemble's models disagree on the target vocabulary: model 0 has {} tokens, "
                   "model {} has {}",
                   V, m, decoders[m]->vocab());
      }
      logp = mean_probability(each);
    }
    std::vector<int64_t> parents, next_row_sentence;
    for (int64_t row0 = 0; row0 < static_cast<int64_t>(row_sentence.size());) {
      const int64_t b = row_sentence[row0];
      const auto n = static_cast<int64_t>(beams[b].alive.size());
      std::vector<double> scores(logp.begin() + row0 * V, logp.begin() + (row0 + n) * V);
      if (extend(beams[b], std::move(scores), V, step + 1 >= limits[b], row0, beam, o.eos_id, parents))
        next_row_sentence.insert(next_row_sentence.end(), beams[b].alive.size(), b);
      row0 += n;
    }
    row_sentence = std::move(next_row_sentence);
    if (!row_sentence.empty())
      for (auto& d : decoders) d->reorder_rows(parents);
  }

  std::vector<std::vector<int64_t>> results;
  for (SentenceBeam& b : beams) results.push_back(best_tokens(b, beam));
  return results;
}

int64_t sample_token(const Tensor& logits, const SamplingOptions& o, Generator* gen) {
  HEED_CHECK(logits.defined() && logits.dim() == 1 && logits.numel() > 0 && logits.is_floating_point(),
             "sample_token: expected float logits [V], got {}",
             logits.defined() ? shape_str(logits.shape()) : std::string("undefined"));
  HEED_CHECK(o.temperature > 0, "sample_token: temperature must be positive, got {}", o.temperature);
  HEED_CHECK(o.top_k >= 0, "sample_token: top_k must be >= 0, got {}", o.top_k);
  HEED_CHECK(o.top_p > 0 && o.top_p <= 1, "sample_token: top_p must be in (0, 1], got {}", o.top_p);
  std::vector<double> z = logits.to(kCPU).to(DType::Float64).contiguous().to_vector<double>();
  const auto V = static_cast<int64_t>(z.size());
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return z[a] > z[b]; });
  int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  const double top = z[order[0]] / o.temperature;
  std::vector<double> p(keep);
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[i] = std::exp(z[order[i]] / o.temperature - top);
  if (o.top_p < 1) {
    double cumulative = 0;
    for (int64_t i = 0; i < keep; ++i) {
      cumulative += p[i] / total;
      if (cumulative >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += p[i];
  const double u = rand({1}, gen, DType::Float64).item<double>() * mass;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

std::vector<int64_t> generate(GPT& model, const std::vector<int64_t>& prompt, int64_t max_new,
                              const SamplingOptions& sampling, Generator* gen, int64_t stop_id) {
  HEED_CHECK(!prompt.empty(), "generate: the prompt needs at least one token");
  HEED_CHECK(max_new >= 0, "generate: max_new must be >= 0, got {}", max_new);
  NoGradGuard no_grad;
  EvalScope eval(model);
  const int64_t block = model.options().block_size;
  const Device device = model.tok_embed->weight.device();
  std::vector<int64_t> context = prompt, out;
  GPTCache cache;
  std::vector<int64_t> feed = context;
  for (int64_t i = 0; i < max_new; ++i) {
    if (cache.empty() || cache[0].length() + static_cast<int64_t>(feed.size()) > block) {
      // Start over on the last block - 1 tokens: learned positions cannot slide.
      cache.clear();
      const auto start = std::max<int64_t>(0, static_cast<int64_t>(context.size()) - (block - 1));
      feed.assign(context.begin() + start, context.end());
    }
    Tensor logits = model.forward(from_vector<int64_t>(feed, {1, static_cast<int64_t>(feed.size())}, device), &cache);
    const int64_t next = sample_token(logits.select(0, 0).select(0, logits.size(1) - 1), sampling, gen);
    out.push_back(next);
    context.push_back(next);
    feed = {next};
    if (next == stop_id) break;
  }
  return out;
}

}  // namespace heed::nn
