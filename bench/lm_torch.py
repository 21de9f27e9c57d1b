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

With --ranks N it trains as heed does under `mpirun -np N lm train`: N
processes (torch.multiprocessing, the gloo backend), each taking rows
rank, rank + N, ... of every batch, the model wrapped in PyTorch's
DistributedDataParallel; rank 0 reports, counting the whole batch's tokens.
"""
import argparse
import os
import sys
import time

import h5py
import torch
import torch.nn as nn
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import (add_export_args, causal_mask, count_parameters, export_attrs,  # noqa: E402
                          load_heed_init, print_summary, train_steps)


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
        causal = causal_mask(T)
        x = self.dropout(self.tok_embed(ids) + self.pos_embed(torch.arange(T)))
        for block in self.blocks:
            x = block(x, src_mask=causal)
        return self.lm_head(self.ln_f(x))


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
    add_export_args(ap)
    ap.add_argument("--ranks", type=int, default=1, help="processes training together (DistributedDataParallel)")
    args = ap.parse_args()
    if args.ranks > 1:
        port = str(29500 + os.getpid() % 1000)
        mp.spawn(train, args=(args, port), nprocs=args.ranks, join=True)
    else:
        train(0, args, None)


def train(rank, args, port):
    if port is not None:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    wall_start = time.perf_counter()

    f = h5py.File(args.export, "r")
    attrs = export_attrs(f)
    c = {k: int(attrs[k]) for k in ("d_model", "nhead", "layers", "block", "batch", "vocab", "warmup", "steps")}
    c.update({k: float(attrs[k]) for k in ("dropout", "lr", "min_lr", "weight_decay", "clip")})
    train_ids = torch.from_numpy(f["train_ids"][()])
    valid_ids = torch.from_numpy(f["valid_ids"][()])
    starts = f["train_starts"][()]
    assert starts.shape == (c["steps"], c["batch"]), (starts.shape, c)
    if args.steps:  # the first steps of the schedule only
        starts = starts[:args.steps]
    batches = [row[rank::args.ranks] for row in starts]  # this rank's part of every batch

    if args.dropout is not None:
        c["dropout"] = args.dropout
    model = GPT(c)
    if args.init == "heed":
        load_heed_init(model, f["init"])
    params = count_parameters(model, "GPT", len(batches)) if rank == 0 else 0
    trained_model = model
    if args.ranks > 1:
        trained_model = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], betas=(0.9, 0.99), eps=1e-8,
                            weight_decay=c["weight_decay"])

    def forward_loss(batch_starts):
        x, y = windows(train_ids, batch_starts, c["block"])
        logits = trained_model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), y

    # Every rank's part has the same rows, so DDP's mean of their means is the batch's mean;
    # the tokens counted are the whole batch's.
    trained = train_steps(model, opt, c, batches, forward_loss, lambda y: y.numel() * args.ranks, quiet=rank > 0)
    if rank > 0:
        return

    valid_loss = None
    if not args.train_only:
        valid_loss = validation_loss(model, valid_ids, c["block"], c["batch"])
        print(f"validation loss {valid_loss:.4f} nats/token over the whole validation split", file=sys.stderr)
    print_summary("lm", args, c, params, len(batches), trained, valid_loss, wall_start, ranks=args.ranks)


if __name__ == "__main__":
    main()
