#!/usr/bin/python3
"""PyTorch twin of train_bench: the same models, batches and step, one JSON line.

    /usr/bin/python3 bench/train_torch.py --model seq2seq|gpt|seq2seq-large|gpt-large
        [--device cpu|cuda[:N]] [--threads 2] [--warmup 3] [--steps 10] [--dropout X] [--tf32 0|1] [--precision fp32|tf32|bf16]

The models are written as the reference generator writes them
(/work/shared/reference/make_reference.py): seq2seq is token embeddings *
sqrt(D) + sinusoidal positions (then dropout, as heed) -> nn.Transformer
(batch_first, post-norm, ReLU) -> generator Linear; gpt is token + learned
position embeddings -> pre-norm nn.TransformerEncoderLayer blocks (GELU, FF
4D) with a causal mask -> LayerNorm -> bias-free lm_head. Same parameter
counts as heed's. The batches have the same shapes and the same padding
(token values differ: only shapes and masks matter for speed).
The -large models are the GPU sizes of train_bench.cpp (Transformer-base and
a GPT-2-small-like model). One step: forward, cross_entropy, backward,
clip_grad_norm_(1.0), AdamW(lr 3e-4, weight_decay 0.01).step(),
zero_grad(set_to_none=True). On a GPU: eager mode, float32 without TF32,
phases timed with torch.cuda.synchronize() at their ends, peak memory from
torch.cuda.max_memory_allocated() (and max_memory_reserved()).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import causal_mask, sinusoidal_table, status_bytes  # noqa: E402


class Seq2Seq(nn.Module):
    def __init__(self, V, D=256, nhead=4, layers=3, ff=1024, dropout=0.1, max_len=256):
        super().__init__()
        self.scale = math.sqrt(D)
        self.src_embed = nn.Embedding(V, D)
        self.tgt_embed = nn.Embedding(V, D)
        self.drop = nn.Dropout(dropout)
        self.transformer = nn.Transformer(D, nhead, layers, layers, ff, dropout=dropout, activation="relu",
                                          batch_first=True, norm_first=False)
        self.generator = nn.Linear(D, V)
        self.register_buffer("pe", sinusoidal_table(max_len, D), persistent=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src, tgt, src_kpm, tgt_kpm):
        S, T = src.shape[1], tgt.shape[1]
        s = self.drop(self.src_embed(src) * self.scale + self.pe[:S])
        t = self.drop(self.tgt_embed(tgt) * self.scale + self.pe[:T])
        h = self.transformer(s, t, tgt_mask=causal_mask(T, src.device), src_key_padding_mask=src_kpm,
                             tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=src_kpm)
        return self.generator(h)


class GPT(nn.Module):
    def __init__(self, V, block, D=256, nhead=4, layers=4, dropout=0.0):
        super().__init__()
        self.tok_embed = nn.Embedding(V, D)
        self.pos_embed = nn.Embedding(block, D)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(D, nhead, 4 * D, dropout=dropout, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(layers))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tok_embed(ids) + self.pos_embed(torch.arange(T, device=ids.device))
        mask = causal_mask(T, ids.device)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.lm_head(self.ln_f(x))


def sentence_length(b, max_len):  # as train_bench.cpp
    return 10 + (b * 7919) % (max_len - 9)


def seq2seq_workload(dropout, large, device):
    B, S, V, PAD = (64, 128, 32000, 0) if large else (128, 24, 8000, 0)
    T = S
    D, nhead, layers, ff = (512, 8, 6, 2048) if large else (256, 4, 3, 1024)
    model = Seq2Seq(V, D, nhead, layers, ff, dropout=0.1 if dropout < 0 else dropout).to(device)
    ls = torch.tensor([sentence_length(b, S) for b in range(B)])
    lt = torch.tensor([sentence_length(B - 1 - b, T) for b in range(B)])
    src_kpm = torch.arange(S)[None, :] >= ls[:, None]
    tgt_kpm = torch.arange(T)[None, :] >= lt[:, None]
    src = torch.randint(1, V, (B, S)).masked_fill(src_kpm, PAD)
    tgt_in = torch.randint(1, V, (B, T)).masked_fill(tgt_kpm, PAD)
    tgt_out = torch.cat([tgt_in[:, 1:], torch.full((B, 1), PAD)], dim=1)
    src, tgt_in, tgt_out, src_kpm, tgt_kpm = (t.to(device) for t in (src, tgt_in, tgt_out, src_kpm, tgt_kpm))

    def forward_loss():
        logits = model(src, tgt_in, src_kpm, tgt_kpm)
        return F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD, label_smoothing=0.1)

    return model, forward_loss, B * (S + T), f"B={B} S={S} T={T} V={V}"


def gpt_workload(dropout, large, device):
    B, T, V = (8, 1024, 32768) if large else (16, 128, 65)
    D, nhead, layers = (768, 12, 12) if large else (256, 4, 4)
    model = GPT(V, T, D, nhead, layers, dropout=0.0 if dropout < 0 else dropout).to(device)
    ids = torch.randint(0, V, (B, T)).to(device)
    targets = torch.randint(0, V, (B, T)).to(device)

    def forward_loss():
        return F.cross_entropy(model(ids).reshape(-1, V), targets.reshape(-1))

    return model, forward_loss, B * T, f"B={B} T={T} V={V}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["seq2seq", "gpt", "seq2seq-large", "gpt-large"], default="gpt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--dropout", type=float, default=-1)
    ap.add_argument("--tf32", type=int, choices=[0, 1], default=0)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default=None,
                    help="tf32: allow_tf32; bf16: torch.autocast(dtype=torch.bfloat16) around the forward and "
                         "the loss, as a PyTorch user trains (overrides --tf32)")
    a = ap.parse_args()
    if a.precision is None:
        a.precision = "tf32" if a.tf32 else "fp32"
    a.tf32 = int(a.precision == "tf32")
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    device = torch.device(a.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = bool(a.tf32)  # off: float32 as heed computes it
        torch.backends.cudnn.allow_tf32 = bool(a.tf32)
    rss0 = status_bytes("VmRSS:")

    make = seq2seq_workload if a.model.startswith("seq2seq") else gpt_workload
    model, forward_loss, tokens, shape = make(a.dropout, a.model.endswith("-large"), device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    params = list(model.parameters())
    times = {"forward": 0.0, "backward": 0.0, "optim": 0.0}
    loss_value = 0.0

    def phase_end():
        if on_gpu:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    autocast = a.precision == "bf16"

    def step():
        nonlocal loss_value
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = forward_loss()
        t1 = phase_end()
        loss.backward()
        t2 = phase_end()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()
        times["forward"] += t1 - t0
        times["backward"] += t2 - t1
        times["optim"] += phase_end() - t2

    for _ in range(a.warmup):
        step()
    for k in times:
        times[k] = 0.0
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    total = time.perf_counter() - t0
    peak, peak_reserved = status_bytes("VmHWM:") - rss0, 0.0
    if on_gpu:
        peak = float(torch.cuda.max_memory_allocated(device))
        peak_reserved = float(torch.cuda.max_memory_reserved(device))
    n = a.steps
    print(json.dumps({
        "impl": "torch", "torch": torch.__version__, "model": a.model, "device": str(device), "shape": shape,
        "threads": a.threads, "steps": n, "params": sum(p.numel() for p in params),
        "step_ms": round(1e3 * total / n, 2), "forward_ms": round(1e3 * times["forward"] / n, 2),
        "backward_ms": round(1e3 * times["backward"] / n, 2), "optim_ms": round(1e3 * times["optim"] / n, 2),
        "tokens_per_s": round(tokens * n / total, 1), "peak_mib": round(peak / 2**20, 1),
        "peak_reserved_mib": round(peak_reserved / 2**20, 1), "tf32": bool(on_gpu and a.tf32),
        "precision": a.precision,
        "loss": round(loss_value, 4)}), flush=True)


if __name__ == "__main__":
    main()
