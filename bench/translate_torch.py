#!/usr/bin/python3
"""Train heed's translation model in PyTorch on exactly the data heed trains on.

    translate train --export-data run.h5 ...         (heed writes the data, then trains)
    /usr/bin/python3 bench/translate_torch.py run.h5 --hyp-out torch.hyp --ref-out ref.txt

The export (examples/translate.cpp, export_data) holds heed's configuration,
the encoded splits, both vocabularies and the rows of every training batch.
This script builds the same model (nn.Transformer, post-norm, batch_first,
embeddings * sqrt(d_model) plus interleaved sinusoidal positions, a generator
Linear; Xavier-uniform init of every matrix, as heed does), trains it on the
same batches in the same order with AdamW (betas 0.9/0.98, eps 1e-9),
heed's warmup-cosine schedule, gradient clipping and label smoothing, then
reports the validation loss (per-token cross-entropy without smoothing, eval
mode, over heed's validation batches) and writes greedy test translations
decoded with heed's length rule.  BLEU is left to `translate bleu`, so both
sides are scored by one implementation.  A JSON summary goes to stdout's
last line.
"""
import argparse
import math
import os
import sys
import time
import warnings

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import (add_export_args, causal_mask, count_parameters, export_attrs,  # noqa: E402
                          load_heed_init, print_summary, sinusoidal_table, train_steps)

PAD, BOS, EOS = 0, 1, 2


def ragged(group):
    flat, offsets = group["flat"][()], group["offsets"][()]
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def pieces(group):
    return [bytes(p) for p in ragged(group)]


class Seq2Seq(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c["d_model"]
        self.scale = math.sqrt(D)
        self.norm_first = bool(c["norm_first"])
        self.src_embed = nn.Embedding(c["src_vocab"], D)
        # heed's share_embeddings / tie_generator: one table for both sides, and logits through it.
        self.tgt_embed = self.src_embed if c["shared_vocab"] else nn.Embedding(c["tgt_vocab"], D)
        self.transformer = nn.Transformer(D, c["nhead"], c["encoder_layers"], c["decoder_layers"],
                                          c["dim_feedforward"], dropout=c["dropout"], batch_first=True,
                                          norm_first=self.norm_first)
        self.generator = None if c["tie_output"] else nn.Linear(D, c["tgt_vocab"])
        self.dropout = nn.Dropout(c["dropout"])
        self.register_buffer("pe", sinusoidal_table(c["max_len"] + 2, D), persistent=False)
        # heed: Xavier-uniform for every matrix, its q/k/v projections being separate [D, D] ones.
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() < 2:
                    continue
                if name.endswith("in_proj_weight"):
                    for chunk in p.chunk(3, dim=0):
                        nn.init.xavier_uniform_(chunk)
                else:
                    nn.init.xavier_uniform_(p)

    def logits(self, h):
        return self.generator(h) if self.generator is not None else h @ self.tgt_embed.weight.t()

    def embed(self, table, ids):
        return self.dropout(table(ids) * self.scale + self.pe[:ids.shape[1]])

    def encode(self, src, src_pad):
        return self.transformer.encoder(self.embed(self.src_embed, src), src_key_padding_mask=src_pad)

    def decode(self, tgt_in, memory, src_pad, tgt_pad=None):
        T = tgt_in.shape[1]
        causal = causal_mask(T)
        h = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory, tgt_mask=causal,
                                     tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
        return self.logits(h)

    def forward(self, src, tgt_in, src_pad, tgt_pad):
        return self.decode(tgt_in, self.encode(src, src_pad), src_pad, tgt_pad)

    def decode_next(self, token, position, memory, src_pad, history):
        """Eval-mode logits [B, V] of one new target position.  history[l] holds
        the inputs of decoder layer l at the earlier positions (a key/value
        cache in effect, as heed's greedy_decode keeps), and grows by one."""
        x = self.tgt_embed(token[:, None]) * self.scale + self.pe[position:position + 1]
        for l, layer in enumerate(self.transformer.decoder.layers):
            history[l] = x if history[l] is None else torch.cat([history[l], x], dim=1)
            if self.norm_first:
                h, past = layer.norm1(x), layer.norm1(history[l])
                x = x + layer.self_attn(h, past, past, need_weights=False)[0]
                x = x + layer.multihead_attn(layer.norm2(x), memory, memory, key_padding_mask=src_pad,
                                             need_weights=False)[0]
                x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
            else:
                x = layer.norm1(x + layer.self_attn(x, history[l], history[l], need_weights=False)[0])
                x = layer.norm2(x + layer.multihead_attn(x, memory, memory, key_padding_mask=src_pad,
                                                         need_weights=False)[0])
                x = layer.norm3(x + layer.linear2(layer.activation(layer.linear1(x))))
        return self.logits(self.transformer.decoder.norm(x))[:, 0]


def make_batch(pairs, rows):
    """heed's TranslationBatcher::make_batch: src+EOS, BOS+tgt, tgt+EOS, PAD-padded."""
    S = max(len(pairs[i][0]) for i in rows) + 1
    T = max(len(pairs[i][1]) for i in rows) + 1
    src = torch.full((len(rows), S), PAD, dtype=torch.long)
    tgt_in = torch.full((len(rows), T), PAD, dtype=torch.long)
    tgt_out = torch.full((len(rows), T), PAD, dtype=torch.long)
    for b, i in enumerate(rows):
        s, t = torch.from_numpy(pairs[i][0]), torch.from_numpy(pairs[i][1])
        src[b, :len(s)] = s
        src[b, len(s)] = EOS
        tgt_in[b, 0] = BOS
        tgt_in[b, 1:len(t) + 1] = t
        tgt_out[b, :len(t)] = t
        tgt_out[b, len(t)] = EOS
    return src, tgt_in, tgt_out


@torch.no_grad()
def validation_loss(model, pairs, batches):
    model.eval()
    total, tokens = 0.0, 0
    for rows in batches:
        src, tgt_in, tgt_out = make_batch(pairs, rows)
        logits = model(src, tgt_in, src == PAD, tgt_in == PAD)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD,
                                 reduction="sum").item()
        tokens += int((tgt_out != PAD).sum())
    model.train()
    return total / tokens


@torch.no_grad()
def greedy_translate(model, sources, max_len, chunk=64):
    """heed's translate(): sources cut to max_len tokens + EOS, at most
    clamp(int(1.5 * source length) + 10, 1, max_len + 1) tokens each, stopping at EOS."""
    model.eval()
    out = []
    for start in range(0, len(sources), chunk):
        rows = [list(s[:max_len]) + [EOS] for s in sources[start:start + chunk]]
        B, S = len(rows), max(len(r) for r in rows)
        src = torch.full((B, S), PAD, dtype=torch.long)
        for b, r in enumerate(rows):
            src[b, :len(r)] = torch.tensor(r)
        src_pad = src == PAD
        limits = [min(max(int(1.5 * len(r)) + 10, 1), max_len + 1) for r in rows]
        memory = model.encode(src, src_pad)
        best = torch.full((B,), BOS, dtype=torch.long)
        history = [None] * len(model.transformer.decoder.layers)
        hyps, done = [[] for _ in range(B)], [False] * B
        for position in range(max(limits)):
            best = model.decode_next(best, position, memory, src_pad, history).argmax(-1)
            all_done = True
            for b in range(B):
                if done[b]:
                    continue
                t = int(best[b])
                if t == EOS or len(hyps[b]) + 1 >= limits[b]:
                    if t != EOS:
                        hyps[b].append(t)
                    done[b] = True
                else:
                    hyps[b].append(t)
                    all_done = False
            if all_done:
                break
        out.extend(hyps)
    model.train()
    return out


@torch.no_grad()
def check_cached_decoder(model, sources, max_len, steps=12):
    """The cached one-position decoder against the full decoder on the same prefixes."""
    model.eval()
    rows = [list(s[:max_len]) + [EOS] for s in sources]
    src = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)
    for b, r in enumerate(rows):
        src[b, :len(r)] = torch.tensor(r)
    memory = model.encode(src, src == PAD)
    ys = torch.full((len(rows), 1), BOS, dtype=torch.long)
    history = [None] * len(model.transformer.decoder.layers)
    worst = 0.0
    for position in range(steps):
        cached = model.decode_next(ys[:, -1], position, memory, src == PAD, history)
        full = model.decode(ys, memory, src == PAD)[:, -1]
        worst = max(worst, float((cached - full).abs().max()))
        ys = torch.cat([ys, full.argmax(-1)[:, None]], dim=1)
    return worst


def detokenize(ids, vocab, kind):
    parts = [vocab[i] for i in ids if i not in (PAD, BOS, EOS)]
    return (b" " if kind == "word" else b"").join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("export", help="HDF5 file written by `translate train --export-data`")
    ap.add_argument("--hyp-out", help="greedy test translations, one per line")
    ap.add_argument("--ref-out", help="the test references, one per line (for `translate bleu`)")
    add_export_args(ap)
    ap.add_argument("--check-decode", type=int, default=0, metavar="N",
                    help="check the cached greedy decoder against full re-decoding on N test sentences, then exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
    torch.manual_seed(args.seed)
    wall_start = time.perf_counter()

    f = h5py.File(args.export, "r")
    attrs = export_attrs(f)
    c = {k: int(attrs[k]) for k in ("d_model", "nhead", "encoder_layers", "decoder_layers", "dim_feedforward",
                                     "src_vocab", "tgt_vocab", "warmup", "steps", "max_len")}
    c.update({k: float(attrs[k]) for k in ("dropout", "label_smoothing", "lr", "min_lr", "weight_decay", "clip")})
    # Absent from exports written before these options existed: those models had none of them.
    c.update({k: int(attrs.get(k, 0)) != 0 for k in ("norm_first", "shared_vocab", "tie_output")})
    c["ema"] = float(attrs.get("ema", 0))  # heed's --ema: evaluation uses averaged weights
    train = list(zip(ragged(f["train/src"]), ragged(f["train/tgt"])))
    valid = list(zip(ragged(f["valid/src"]), ragged(f["valid/tgt"])))
    test_src = ragged(f["test/src"])
    test_ref = pieces(f["test/ref_text"])
    tgt_vocab = pieces(f["vocab/tgt"])
    train_batches = [list(r) for r in ragged(f["train_batches"])]
    valid_batches = [list(r) for r in ragged(f["valid_batches"])]
    assert len(train_batches) == c["steps"], (len(train_batches), c["steps"])
    if args.steps:  # the first steps of the schedule only
        train_batches = train_batches[:args.steps]

    if args.dropout is not None:
        c["dropout"] = args.dropout
    model = Seq2Seq(c)
    if args.init == "heed":
        load_heed_init(model, f["init"],
                       lambda n: n.removeprefix("transformer.").replace("multihead_attn.", "cross_attn."))
    if args.check_decode:
        worst = check_cached_decoder(model, test_src[:args.check_decode], c["max_len"])
        print(f"cached decoder vs full decoder: largest logit difference {worst:.2e}")
        sys.exit(0 if worst < 1e-3 else 1)
    params = count_parameters(model, "Seq2Seq", len(train_batches))
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], betas=(0.9, 0.98), eps=1e-9,
                            weight_decay=c["weight_decay"])
    # heed's optim::ExponentialMovingAverage (docs/optim.md): avg += (1 - d) (p - avg),
    # d = min(decay, (1 + n) / (10 + n)) after n updates; the averages are what is evaluated.
    averages = [p.detach().clone() for p in model.parameters()] if c["ema"] > 0 else None

    def forward_loss(rows):
        src, tgt_in, tgt_out = make_batch(train, rows)
        logits = model(src, tgt_in, src == PAD, tgt_in == PAD)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD,
                               label_smoothing=c["label_smoothing"]), tgt_out

    def update_averages(step):
        d = min(c["ema"], step / (9.0 + step))  # n = step - 1 updates before this one
        with torch.no_grad():
            for a, p in zip(averages, model.parameters()):
                a.add_(p - a, alpha=1.0 - d)

    trained = train_steps(
        model, opt, c, train_batches, forward_loss, lambda tgt_out: int((tgt_out != PAD).sum()),
        update_averages if averages is not None else None)

    if averages is not None:
        with torch.no_grad():
            for a, p in zip(averages, model.parameters()):
                p.copy_(a)
    if args.train_only:
        print_summary("translate", args, c, params, len(train_batches), trained, None, wall_start,
                      test_sentences=len(test_src))
        return
    valid_loss = validation_loss(model, valid, valid_batches)
    print(f"validation loss {valid_loss:.4f}", file=sys.stderr)
    hyps = greedy_translate(model, test_src, c["max_len"])
    kind = attrs.get("tgt_tokenizer_kind", "bpe")
    if args.hyp_out:
        with open(args.hyp_out, "wb") as out:
            out.writelines(detokenize(h, tgt_vocab, kind) + b"\n" for h in hyps)
    if args.ref_out:
        with open(args.ref_out, "wb") as out:
            out.writelines(r + b"\n" for r in test_ref)
    print_summary("translate", args, c, params, len(train_batches), trained, valid_loss, wall_start,
                  test_sentences=len(test_src))


if __name__ == "__main__":
    main()
