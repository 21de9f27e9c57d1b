"""What the PyTorch twins of heed's benchmarks and programs share.

bench/lm_torch.py, translate_torch.py, train_torch.py, attention_torch.py and
tests/import_torch/make_case.py import this file (each puts its own folder,
or ../../bench, on sys.path first, so they run from any directory). One copy
of each piece keeps the twins computing what heed computes in one way: the
sinusoidal position table, the causal mask, heed's learning-rate schedule, the
import of heed's initial weights and the training loop of the side-by-side
programs. Only torch and the standard library are imported at the top (numpy
only where the side-by-side programs need it), so that the benchmark twins
run under any Python whose torch works, and importing this costs nothing they
did not pay before.
"""
import json
import math
import resource
import sys
import time

import torch


def status_bytes(key):
    """A /proc/self/status field ("VmRSS:", "VmHWM:") in bytes; 0 if absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return float(line.split()[1]) * 1024.0
    return 0.0


def sinusoidal_table(max_len, dim, base=10000.0):
    """heed's (and Vaswani's) interleaved table: PE[p, 2i] = sin, PE[p, 2i+1] = cos.
    Computed in float64, returned as float32."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    pe = torch.zeros(max_len, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq)
    return pe.float()


def causal_mask(T, device=None):
    """[T, T] bool, True above the diagonal: the keys a query may not see."""
    i = torch.arange(T, device=device)[:, None]
    return torch.arange(T, device=device)[None, :] > i


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


def add_export_args(ap):
    """The flags lm_torch.py and translate_torch.py both take, after their own first ones."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", choices=("torch", "heed"), default="torch",
                    help="initial weights: PyTorch's own draw, or heed's (from the export)")
    ap.add_argument("--dropout", type=float, help="override the exported dropout (0: compare first steps exactly)")
    ap.add_argument("--steps", type=int, default=0, help="train only the first STEPS steps of the schedule (0: all)")
    ap.add_argument("--train-only", action="store_true",
                    help="skip validation and decoding (valid_loss null): a throughput probe")


def export_attrs(f):
    """The export's attributes as strings (h5py gives bytes or numbers)."""
    return {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}


def train_steps(model, opt, c, batches, forward_loss, count_tokens, after_step=None, quiet=False):
    """The side-by-side programs' training loop, as heed's: one step per batch,
    forward_loss(batch) -> (loss, targets); zero_grad, backward,
    clip_grad_norm_(c["clip"]), the learning rate lr_at(step, c), opt.step(),
    then after_step(step) if given (translate's weight averages). The step's
    time runs from the batch's making to loss.item(); count_tokens(targets),
    the trained tokens, is counted outside it. A progress line every 50 steps
    and at the last goes to stderr, unless quiet. Returns (train_seconds, tokens, first_loss,
    losses)."""
    import numpy as np  # the mean of the last 50 losses, as the programs report it; only they need numpy

    model.train()
    train_seconds, tokens, first_loss, losses = 0.0, 0, None, []
    for step, batch in enumerate(batches, start=1):
        t0 = time.perf_counter()
        loss, targets = forward_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c)
        opt.step()
        if after_step is not None:
            after_step(step)
        l = loss.item()
        train_seconds += time.perf_counter() - t0
        tokens += count_tokens(targets)
        first_loss = l if first_loss is None else first_loss
        losses.append(l)
        if not quiet and (step % 50 == 0 or step == len(batches)):
            print(f"step {step}/{c['steps']} loss {np.mean(losses[-50:]):.3f} "
                  f"lr {lr_at(step, c):.2e} {tokens / train_seconds:.0f} tok/s", file=sys.stderr, flush=True)
    return train_seconds, tokens, first_loss, losses


def count_parameters(model, name, steps):
    """The parameter count, after the line the side-by-side programs print on stderr first."""
    params = sum(p.numel() for p in model.parameters())
    print(f"{name} (PyTorch {torch.__version__}): {params} parameters, {steps} steps, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)
    return params


def print_summary(program, args, c, params, steps, trained, valid_loss, wall_start, **extra):
    """The side-by-side programs' last line on stdout, the JSON that
    bench/run_side_by_side.sh reads; trained is train_steps' result and extra
    (translate's test_sentences) goes before the process's figures."""
    import numpy as np

    train_seconds, tokens, first_loss, losses = trained
    summary = dict(program=program, framework="pytorch", init=args.init, dropout=c["dropout"], torch=torch.__version__,
                   threads=torch.get_num_threads(), parameters=params, steps=steps, first_loss=first_loss,
                   last50_train_loss=float(np.mean(losses[-50:])), valid_loss=valid_loss,
                   train_tokens=tokens, train_seconds=train_seconds, tokens_per_s=tokens / train_seconds, **extra)
    summary.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   wall_s=time.perf_counter() - wall_start)
    print(json.dumps(summary))
