#!/usr/bin/env bash
# Runs the training-step benchmark of heed (train_bench) and of PyTorch
# (train_torch.py) for both models and rewrites the training section of
# bench/RESULTS.md (between <!-- train:begin --> and <!-- train:end -->).
# Builds nothing: pass the train_bench binary.
#
#   bench/run_train.sh [path/to/train_bench]     (default: build/bench/train_bench)
#
# Environment:
#   HEED_BENCH_THREADS  heed's threads (default 2); PyTorch runs with each count from 1 to it and
#                       the table shows its fastest (PyTorch 1.13 is faster on 1 thread than on 2
#                       on the 2-core machines measured; its slower setting would flatter heed)
#   HEED_BENCH_TORCH_THREADS  PyTorch's thread count instead of trying each
#   HEED_BENCH_STEPS    timed steps per model (default 10; 3 warm-up steps first)
#   HEED_BENCH_MODELS   comma-separated models (default seq2seq,gpt)
#   HEED_BENCH_BF16     1 (default): also heed with --precision bf16-matmul (float32 matmuls with
#                       bf16 inputs) beside PyTorch's CPU autocast to bf16, in a second table; 0: not
#   HEED_BENCH_NOTE     a line of text added under the table (e.g. the figures before a change)
#   HEED_BENCH_PRIORITY=1  run in a new session whose scheduler autogroup has
#                       nice -20 (needs root); see bench/run_gemm.sh
# With HEED_PROFILE=1 heed's per-kernel profile is printed (to stderr) too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
bench_priority "$@"
bench_bin="${1:-build/bench/train_bench}"
threads="${HEED_BENCH_THREADS:-2}"
steps="${HEED_BENCH_STEPS:-10}"
models="${HEED_BENCH_MODELS:-seq2seq,gpt}"
python=/usr/bin/python3

bench_require_bin "$bench_bin" train_bench

command_line="$(bench_command_line "bench/run_train.sh $*" HEED_BENCH_THREADS HEED_BENCH_TORCH_THREADS \
  HEED_BENCH_STEPS HEED_BENCH_MODELS HEED_BENCH_BF16 HEED_BENCH_PRIORITY)"
torch_counts=${HEED_BENCH_TORCH_THREADS:-$(seq -s ' ' 1 "$threads")}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

IFS=',' read -ra model_list <<< "$models"
for model in "${model_list[@]}"; do
  echo "== heed $model ($threads threads)" >&2
  "$bench_bin" --model "$model" --threads "$threads" --steps "$steps" | tee -a "$tmp/heed.jsonl" >&2
  for n in $torch_counts; do
    echo "== torch $model ($n threads)" >&2
    OMP_NUM_THREADS="$n" OPENBLAS_NUM_THREADS="$n" \
      "$python" "$here/train_torch.py" --model "$model" --threads "$n" --steps "$steps" |
      tee -a "$tmp/torch.jsonl" >&2
  done
  if [[ "${HEED_BENCH_BF16:-1}" == 1 ]]; then
    echo "== heed $model, --precision bf16-matmul ($threads threads)" >&2
    "$bench_bin" --model "$model" --threads "$threads" --steps "$steps" --precision bf16-matmul |
      tee -a "$tmp/heed_bf16.jsonl" >&2
    for n in $torch_counts; do
      echo "== torch $model, --precision bf16 ($n threads)" >&2
      OMP_NUM_THREADS="$n" OPENBLAS_NUM_THREADS="$n" \
        "$python" "$here/train_torch.py" --model "$model" --threads "$n" --steps "$steps" --precision bf16 |
        tee -a "$tmp/torch_bf16.jsonl" >&2
    done
  fi
done

"$python" - "$tmp" "$threads" "$command_line" "${HEED_BENCH_NOTE:-}" "$(bench_machine unknown)" "$(bench_date)" \
  >"$tmp/section.md" <<'PYEOF'
import json
import os
import sys

tmp, threads, command_line, note, machine, date = sys.argv[1:7]


def read_jsonl(name):
    """Each model's fastest row (PyTorch's file has one per thread count tried), and every row's speed."""
    best, speeds = {}, {}
    if not os.path.exists(os.path.join(tmp, name)):
        return best, speeds
    with open(os.path.join(tmp, name)) as f:
        for r in (json.loads(l) for l in f if l.strip().startswith("{")):
            speeds.setdefault(r["model"], []).append((r.get("threads", "?"), r["tokens_per_s"]))
            if r["model"] not in best or r["tokens_per_s"] > best[r["model"]]["tokens_per_s"]:
                best[r["model"]] = r
    return best, speeds


(heed, _), (torch, torch_speeds) = read_jsonl("heed.jsonl"), read_jsonl("torch.jsonl")
try:
    load = open("/proc/loadavg").read().split()[0]
except OSError:
    load = "?"
torch_version = next(iter(torch.values()), {}).get("torch", "?")

describe = {
    "seq2seq": "Seq2SeqTransformer d_model 256, 3+3 layers, nhead 4, ff 1024, ReLU, post-norm, dropout 0.1, "
               "vocab 8000; B=128 pairs padded to S=T=24 (lengths 10..24); label smoothing 0.1",
    "gpt": "GPT 4 layers, d_model 256, nhead 4, ff 1024, GELU, ctx 128, vocab 65, dropout 0; B=16, T=128",
}
lines = ["## Training step (float32, CPU)", ""]
lines.append(f"- CPU: {machine}; heed: {threads} threads; torch {torch_version} with its OpenBLAS: its fastest "
             f"thread count of those tried, given per row; load average when the results were written: {load}")
lines.append(f"- Date: {date}")
for model in describe:
    if model in heed:
        lines.append(f"- {model}: {describe[model]}")
lines.append("- One step: forward, cross_entropy, backward, clip_grad_norm(1.0), AdamW(lr 3e-4, wd 0.01) step, "
             "zero_grad (bench/train_bench.cpp, bench/train_torch.py). tokens/s counts every input position "
             "(seq2seq B*(S+T), gpt B*T). Mean of the timed steps after 3 warm-up steps.")
lines.append("- Peak: resident high-water mark (VmHWM) minus the resident set before the model was built.")
lines.append(f"- Command: `{command_line}`")
lines.append("")
lines.append("| model | heed tokens/s | torch tokens/s (threads; the others tried) | heed / torch speed "
             "| heed step ms (fwd / bwd / optim) | torch step ms (fwd / bwd / optim) | heed peak MiB | torch peak MiB |")
lines.append("|---|---:|---:|---:|---|---|---:|---:|")
for model in describe:
    if model not in heed or model not in torch:
        continue
    h, t = heed[model], torch[model]
    parts = lambda r: f"{r['step_ms']:.0f} ({r['forward_ms']:.0f} / {r['backward_ms']:.0f} / {r['optim_ms']:.0f})"
    others = ", ".join(f"{n}: {s:.0f}" for n, s in torch_speeds[model] if n != t.get("threads"))
    tried = f"{t.get('threads', '?')}" + (f"; {others}" if others else "")
    lines.append(f"| {model} | {h['tokens_per_s']:.0f} | {t['tokens_per_s']:.0f} ({tried}) | "
                 f"{h['tokens_per_s'] / t['tokens_per_s']:.2f} | {parts(h)} | {parts(t)} | "
                 f"{h['peak_mib']:.0f} | {t['peak_mib']:.0f} |")
(heed16, _), (torch16, torch16_speeds) = read_jsonl("heed_bf16.jsonl"), read_jsonl("torch_bf16.jsonl")
if heed16:
    lines += ["", "Reduced precision on the CPU: heed `--precision bf16-matmul` (float32 tensors, matmuls with bf16 "
              "inputs and float32 sums; docs/mixed_precision.md) beside its float32 row above, and PyTorch's own "
              "way to go faster on a CPU, `torch.autocast(\"cpu\", torch.bfloat16)` (train_torch.py "
              "--precision bf16; its fastest thread count):", "",
              "| model | heed bf16-matmul tokens/s | / heed float32 | torch autocast bf16 tokens/s (threads; the "
              "others tried) | heed bf16-matmul / torch bf16 | heed step ms (fwd / bwd / optim) | heed loss "
              "float32 / bf16-matmul | heed peak MiB |",
              "|---|---:|---:|---:|---:|---|---|---:|"]
    for model in describe:
        if model not in heed16 or model not in heed:
            continue
        h, f = heed16[model], heed[model]
        t = torch16.get(model)
        parts = f"{h['step_ms']:.0f} ({h['forward_ms']:.0f} / {h['backward_ms']:.0f} / {h['optim_ms']:.0f})"
        if t:
            others = ", ".join(f"{n}: {s:.0f}" for n, s in torch16_speeds[model] if n != t.get("threads"))
            torch_cell = f"{t['tokens_per_s']:.0f} ({t.get('threads', '?')}" + (f"; {others}" if others else "") + ")"
            ratio = f"{h['tokens_per_s'] / t['tokens_per_s']:.2f}"
        else:
            torch_cell, ratio = "-", "-"
        lines.append(f"| {model} | {h['tokens_per_s']:.0f} | {h['tokens_per_s'] / f['tokens_per_s']:.2f} | "
                     f"{torch_cell} | {ratio} | {parts} | {f['loss']:.4f} / {h['loss']:.4f} | {h['peak_mib']:.0f} |")
if note:
    lines += ["", note]
section = "<!-- train:begin -->\n" + "\n".join(lines) + "\n<!-- train:end -->"
print(section)
PYEOF
bench_write_section train "$tmp/section.md" "$here/RESULTS.md"
cat "$tmp/section.md"
