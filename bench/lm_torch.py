#!/usr/bin/python3
"""Train heed's GPT language model in PyTorch on exactly the windows heed trains on.

    lm train --export-data run.h5 ...                 (heed writes the data, then trains)
    /usr/bin/python3 bench/lm_torch.py run.h5

The export (examples/lm.cpp, export_data) holds heed's configuration, the
train and validation id streams and the window starts of every step.  This
script builds the same model (token + learned position embeddings, dropout,
pre-norm nn.TransformerEncoderLayer blocks with GELU and FF = 4 * d_model,
a causal mask, final LayerNorm, bias-free lm_head; PyTorch's default init),
trains it with AdamW (betas 0.9/0.99, eps 1e-8), heed's warmup-cosine
schedule and gradient clipping, and reports the validation loss as heed's
final one: mean cross-entropy per token over every consecutive
non-overlapping window of the validation stream, in eval mode.  A JSON
summary goes to stdout's last line.
"""
import argparse
import json
import math
import resource
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c["d_model"]
        self.tok_embed = nn.Embedding(c["vocab"], D)
        self.pos_embed = nn.Embedding(c["block"], D)
        self.dropout = nn.Dropout(c["dropout"])
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(D, c["nhead"], 4 * D, dropout=c["dropout"], activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, c["vocab"], bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = self.dropout(self.tok_embed(ids) + self.pos_embed(torch.arange(T)))
        for block in self.blocks:
            x = block(x, src_mask=causal)
        return self.lm_head(self.ln_f(x))


def load_heed_init(model, group, rename=lambda name: name):
    """Copies heed's initial weights (the export's init/ group, heed's names:
    q/k/v projections apart) into the torch model."""
    used = set()
    with torch.no_grad():
        for name, p in model.named_parameters():
            heed = rename(name)
            if heed.endswith(("in_proj_weight", "in_proj_bias")):
                head, kind = heed.rsplit("in_proj_", 1)
                parts = [f"{head}{x}_proj.{kind}" for x in "qkv"]
                p.copy_(torch.cat([torch.from_numpy(group[n][()]) for n in parts]))
                used.update(parts)
            else:
                p.copy_(torch.from_numpy(group[heed][()]))
                used.add(heed)
    missing = set(group.keys()) - used
    assert not missing, f"heed parameters without a torch twin: {sorted(missing)}"


def lr_at(step, c):
    """heed's WarmupCosineSchedule (docs/optim.md), step 1-based."""
    warmup, total, base, low = c["warmup"], c["steps"], c["lr"], c["min_lr"]
    if step <= warmup:
        return base * step / warmup
    if step >= total:
        return low
    progress = (step - warmup) / (total - warmup)
    return low + 0.5 * (base - low) * (1.0 + math.cos(math.pi * progress))


def windows(ids, starts, block):
    idx = torch.as_tensor(starts)[:, None] + torch.arange(block + 1)[None, :]
    w = ids[idx]
    return w[:, :-1], w[:, 1:]


@torch.no_grad()
def validation_loss(model, ids, block, batch):
    """heed's LMBatcher::sequential_batches(0): windows k*block, k < (N-1)//block."""
    model.eval()
    n = (len(ids) - 1) // block
    total, tokens = 0.0, 0
    for w in range(0, n, batch):
        x, y = windows(ids, [k * block for k in range(w, min(n, w + batch))], block)
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        tokens += y.numel()
    model.train()
    return total / tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("export", help="HDF5 file written by `lm train --export-data`")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", choices=("torch", "heed"), default="torch",
                    help="initial weights: PyTorch's own draw, or heed's (from the export)")
    ap.add_argument("--dropout", type=float, help="override the exported dropout (0: compare first steps exactly)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    wall_start = time.perf_counter()

    f = h5py.File(args.export, "r")
    attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
    c = {k: int(attrs[k]) for k in ("d_model", "nhead", "layers", "block", "batch", "vocab", "warmup", "steps")}
    c.update({k: float(attrs[k]) for k in ("dropout", "lr", "min_lr", "weight_decay", "clip")})
    train_ids = torch.from_numpy(f["train_ids"][()])
    valid_ids = torch.from_numpy(f["valid_ids"][()])
    starts = f["train_starts"][()]
    assert starts.shape == (c["steps"], c["batch"]), (starts.shape, c)

    if args.dropout is not None:
        c["dropout"] = args.dropout
    model = GPT(c)
    if args.init == "heed":
        load_heed_init(model, f["init"])
    params = sum(p.numel() for p in model.parameters())
    print(f"GPT (PyTorch {torch.__version__}): {params} parameters, {c['steps']} steps, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], betas=(0.9, 0.99), eps=1e-8,
                            weight_decay=c["weight_decay"])
    model.train()
    train_seconds, tokens, first_loss, losses = 0.0, 0, None, []
    for step in range(1, c["steps"] + 1):
        t0 = time.perf_counter()
        x, y = windows(train_ids, starts[step - 1], c["block"])
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c)
        opt.step()
        l = loss.item()
        train_seconds += time.perf_counter() - t0
        tokens += y.numel()
        first_loss = l if first_loss is None else first_loss
        losses.append(l)
        if step % 50 == 0 or step == c["steps"]:
            print(f"step {step}/{c['steps']} loss {np.mean(losses[-50:]):.3f} lr {lr_at(step, c):.2e} "
                  f"{tokens / train_seconds:.0f} tok/s", file=sys.stderr, flush=True)

    valid_loss = validation_loss(model, valid_ids, c["block"], c["batch"])
    print(f"validation loss {valid_loss:.4f} nats/token over the whole validation split", file=sys.stderr)
    summary = dict(program="lm", framework="pytorch", init=args.init, dropout=c["dropout"], torch=torch.__version__, threads=torch.get_num_threads(),
                   parameters=params, steps=c["steps"], first_loss=first_loss,
                   last50_train_loss=float(np.mean(losses[-50:])), valid_loss=valid_loss,
                   train_tokens=tokens, train_seconds=train_seconds, tokens_per_s=tokens / train_seconds,
                   peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   wall_s=time.perf_counter() - wall_start)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
