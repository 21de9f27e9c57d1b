#!/usr/bin/python3
"""PyTorch twin of gpu_bench: the same matmuls and row ops on a GPU, eager
mode, timed the same way, one JSON line each (bench/run_gpu.sh compares).

    python3 bench/gpu_torch.py [--device 0] [--section all|matmul|rows|attention] [--quick]

matmul: torch.matmul on the shapes of gpu_bench.cpp, float32 with TF32 off
(torch's default), then TF32 on for the same rows gpu_bench times in TF32.
rows: softmax [4096, 32768], F.layer_norm [16384, 4096] (with weight and
bias), F.cross_entropy [8192, 32768], forward under no_grad and forward +
backward, with the same least-traffic byte counts as gpu_bench.cpp.
Timing: CUDA events on the current stream around n calls after two warm-up
calls, n chosen so a measurement lasts about 0.2 s; mean per call.
"""
import argparse
import json

import torch
import torch.nn.functional as F


def timed_ms(f, quick):
    target = 60.0 if quick else 200.0
    f()
    f()
    torch.cuda.synchronize()

    def run(n):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            f()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / n

    one = run(1)
    n = min(500, max(3, int(target / max(one, 1e-3))))
    return run(n)


# (name, batch, M, N, K, b_transposed): as gpu_bench.cpp's matmul cases.
MATMULS = [(f"square {n}", 1, n, n, n, False) for n in (1024, 2048, 4096, 8192)] + [
    ("linear 8192x768 W[3072,768]^T", 1, 8192, 3072, 768, True),
    ("attention q k^T (96 x 1024x64 . 64x1024)", 96, 1024, 1024, 64, True),
    ("attention p v (96 x 1024x1024 . 1024x64)", 96, 1024, 64, 1024, False),
    ("attention q k^T (64 x 2048x128 . 128x2048)", 64, 2048, 2048, 128, True),
    ("attention p v (64 x 2048x2048 . 2048x128)", 64, 2048, 128, 2048, False),
]
TF32_ROWS = ("square 4096", "square 8192", "attention q k^T (96 x 1024x64 . 64x1024)")


def matmul_case(name, batch, M, N, K, bt, tf32, device, quick):
    line = {"impl": "torch", "kind": "matmul", "name": name, "batch": batch, "m": M, "n": N, "k": K,
            "math": "tf32" if tf32 else "fp32"}
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        lead = (batch,) if batch > 1 else ()
        a = torch.randn(*lead, M, K, device=device)
        b = torch.randn(*lead, N, K, device=device) if bt else torch.randn(*lead, K, N, device=device)
        b_op = b.transpose(-2, -1) if bt else b
        with torch.no_grad():
            ms = timed_ms(lambda: torch.matmul(a, b_op), quick)
        line.update(ms=round(ms, 4), tflops=round(2.0 * batch * M * N * K / ms / 1e9, 2))
    except Exception as e:  # noqa: BLE001 - one failed measurement must not stop the others
        line["error"] = str(e)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    print(json.dumps(line), flush=True)


def row_case(op, rows, cols, fwd_bytes, bwd_bytes, device, quick):
    line = {"impl": "torch", "kind": "row", "op": op, "rows": rows, "cols": cols, "fwd_bytes": fwd_bytes,
            "bwd_bytes": bwd_bytes}
    try:
        x = torch.randn(rows, cols, device=device)
        dy = torch.randn(rows, cols, device=device)
        w = torch.ones(cols, device=device)
        bias = torch.zeros(cols, device=device)
        target = (torch.arange(rows, device=device) * 7919) % cols

        def forward(inp, wt, bs):
            if op == "softmax":
                return torch.softmax(inp, -1)
            if op == "layer_norm":
                return F.layer_norm(inp, (cols,), wt, bs, 1e-5)
            return F.cross_entropy(inp, target)

        with torch.no_grad():
            fwd_ms = timed_ms(lambda: forward(x, w, bias), quick)
        xg = x.detach().requires_grad_()
        wg = w.detach().requires_grad_()
        bg = bias.detach().requires_grad_()

        def fwdbwd():
            y = forward(xg, wg, bg)
            if op == "cross_entropy":
                y.backward()
            else:
                y.backward(dy)
            xg.grad = wg.grad = bg.grad = None

        fwdbwd_ms = timed_ms(fwdbwd, quick)
        bwd_ms = max(fwdbwd_ms - fwd_ms, 1e-6)
        line.update(fwd_ms=round(fwd_ms, 4), fwdbwd_ms=round(fwdbwd_ms, 4),
                    fwd_gbs=round(fwd_bytes / fwd_ms / 1e6, 1), bwd_gbs=round(bwd_bytes / bwd_ms / 1e6, 1))
    except Exception as e:  # noqa: BLE001
        line["error"] = str(e)
    print(json.dumps(line), flush=True)


def attention_case(dtype, d, T, causal, device, quick):
    """F.scaled_dot_product_attention forward + backward, as gpu_bench.cpp's
    attention cases (bf16: its flash kernel; fp32: its memory-efficient one;
    tf32: fp32 with TF32 matmuls allowed)."""
    B, H = 4, 16
    line = {"impl": "torch", "kind": "attention", "dtype": dtype, "B": B, "H": H, "T": T, "d": d, "causal": causal}
    try:
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        dt = torch.bfloat16 if dtype == "bf16" else torch.float32
        q, k, v = (torch.randn(B, H, T, d, device=device, dtype=dt, requires_grad=True) for _ in range(3))
        g = torch.randn(B, H, T, d, device=device, dtype=dt)

        def step():
            for t in (q, k, v):
                t.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=causal).backward(g)

        ms = timed_ms(step, quick)
        flops = 3.5 * 4.0 * B * H * T * T * d * (0.5 if causal else 1.0)
        line.update(ms=round(ms, 4), tflops=round(flops / ms / 1e9, 2))
    except Exception as e:  # noqa: BLE001 - one failed measurement must not stop the others
        line["error"] = str(e)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    print(json.dumps(line), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--section", choices=["all", "matmul", "rows", "attention"], default="all")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_torch.py: torch sees no GPU (torch %s, built with CUDA %s)" %
                         (torch.__version__, torch.version.cuda))
    device = torch.device("cuda", a.device)
    torch.cuda.set_device(device)
    torch.manual_seed(7)
    props = torch.cuda.get_device_properties(device)
    print(json.dumps({"impl": "torch", "kind": "device", "name": props.name, "torch": torch.__version__,
                      "cuda": torch.version.cuda, "memory_gib": round(props.total_memory / 2**30, 1)}), flush=True)
    if a.section in ("all", "matmul"):
        for name, batch, M, N, K, bt in MATMULS:
            if a.quick and batch * M * N * K > 4096 ** 3:
                continue
            matmul_case(name, batch, M, N, K, bt, False, device, a.quick)
        for name, batch, M, N, K, bt in MATMULS:
            if name in TF32_ROWS:
                matmul_case(name, batch, M, N, K, bt, True, device, a.quick)
    if a.section in ("all", "rows"):
        q = 4 if a.quick else 1
        f = 4
        for op, rows, cols, fwd_n, bwd_n in (("softmax", 4096 // q, 32768, 2, 3), ("layer_norm", 16384 // q, 4096, 2, 3),
                                             ("cross_entropy", 8192 // q, 32768, 1, 2)):
            row_case(op, rows, cols, fwd_n * f * rows * cols, bwd_n * f * rows * cols, device, a.quick)
    if a.section in ("all", "attention"):
        for dtype in ("bf16", "fp32", "tf32"):
            for d in (64, 128):
                for T in (1024, 2048, 4096, 8192):
                    for causal in (False, True):
                        if a.quick and T > 2048:
                            continue
                        attention_case(dtype, d, T, causal, device, a.quick)


if __name__ == "__main__":
    main()
