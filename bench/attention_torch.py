#!/usr/bin/python3
"""PyTorch twin of attention_bench: one configuration per process, one JSON line.

    /usr/bin/python3 bench/attention_torch.py --impl softmax|softmax_causal|softmax_window|linear|linear_causal
        --T 1024 [--B 1] [--H 4] [--d 64] [--window 256] [--threads 2] [--min-time 1.0] [--max-reps 20]

The same computations as heed's, written with the same ops: softmax attention
composed as q k^T * scale (masked for causal), softmax, @ v (PyTorch 1.13 has
no fused scaled_dot_product_attention; softmax_window masks keys outside the causal
window p - window < j <= p, as nn::sliding_window_mask); linear attention with phi = elu + 1,
the non-causal form regrouped as phi(q) (phi(k)^T v), the causal one in
chunks of 64 rows with a carried [d, dv] state, as nn::linear_attention.
Peak memory is VmHWM minus the resident set before the inputs were made.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import status_bytes  # noqa: E402

CHUNK = 64  # as kCausalChunk in nn/linear_attention.cpp


def softmax_attention(q, k, v, causal_mask):
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal_mask is not None:
        scores = scores.masked_fill(causal_mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def linear_attention(q, k, v, causal, eps=1e-6):
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    if not causal:
        kv = torch.matmul(fk.transpose(-1, -2), v)
        den = (fq * fk.sum(dim=-2, keepdim=True)).sum(dim=-1, keepdim=True)
        return torch.matmul(fq, kv) / (den + eps)
    T = q.shape[2]
    C = min(T, CHUNK)
    tril = torch.tril(torch.ones(C, C, dtype=q.dtype))
    state = zsum = None
    outs = []
    for qc, kc, vc in zip(fq.split(C, dim=2), fk.split(C, dim=2), v.split(C, dim=2)):
        n = qc.shape[2]
        kernel = torch.matmul(qc, kc.transpose(-1, -2)) * tril[:n, :n]
        num = torch.matmul(kernel, vc)
        den = kernel.sum(dim=-1, keepdim=True)
        if state is not None:
            num = num + torch.matmul(qc, state)
            den = den + (qc * zsum).sum(dim=-1, keepdim=True)
        outs.append(num / (den + eps))
        kv, ks = torch.matmul(kc.transpose(-1, -2), vc), kc.sum(dim=-2, keepdim=True)
        state = kv if state is None else state + kv
        zsum = ks if zsum is None else zsum + ks
    return torch.cat(outs, dim=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", required=True, choices=["softmax", "softmax_causal", "softmax_window", "linear", "linear_causal"])
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--max-reps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rss0 = status_bytes("VmRSS:")

    torch.manual_seed(42)
    shape = (a.B, a.H, a.T, a.d)
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    g = torch.randn(shape)
    causal_mask = None
    idx = torch.arange(a.T)
    if a.impl == "softmax_causal":
        causal_mask = idx[None, :] > idx[:, None]
    if a.impl == "softmax_window":
        causal_mask = (idx[None, :] > idx[:, None]) | (idx[None, :] <= idx[:, None] - a.window)

    def step():
        for t in (q, k, v):
            t.grad = None
        if a.impl.startswith("linear"):
            out = linear_attention(q, k, v, a.impl == "linear_causal")
        else:
            out = softmax_attention(q, k, v, causal_mask)
        out.backward(g)

    step()  # warm-up
    best, total, reps = float("inf"), 0.0, 0
    while (total < a.min_time or reps < 2) and reps < a.max_reps:
        t0 = time.perf_counter()
        step()
        s = time.perf_counter() - t0
        best = min(best, s)
        total += s
        reps += 1
    peak = status_bytes("VmHWM:") - rss0
    print(json.dumps({"impl": a.impl, "B": a.B, "H": a.H, "T": a.T, "d": a.d, "window": a.window,
                      "threads": a.threads, "reps": reps,
                      "ms": round(best * 1e3, 3), "peak_mib": round(peak / 2**20, 1), "torch": torch.__version__}),
          flush=True)


if __name__ == "__main__":
    main()
