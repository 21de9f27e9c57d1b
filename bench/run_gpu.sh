#!/usr/bin/env bash
# Runs heed's GPU benchmarks (gpu_bench: matmul against cuBLAS, row kernels
# against the memory bandwidth; train_bench --device cuda: training steps) and
# PyTorch's twins (gpu_torch.py, train_torch.py --device cuda), then rewrites
# the GPU section of bench/RESULTS.md (between <!-- gpu:begin --> and
# <!-- gpu:end -->). Builds nothing: pass the build folder of a CUDA build.
#
#   bench/run_gpu.sh [BUILD_DIR]          (default: build-cuda)
#
# Environment:
#   HEED_TORCH_PYTHON  a Python whose torch sees the GPU (default: the first of
#                      python3 on PATH and /usr/bin/python3 that does); if none
#                      does, heed is measured alone
#   HEED_PEAK_GBS      the GPU's peak memory bandwidth in GB/s, when the one
#                      computed from its memory clock and bus width is off
#                      (an H200 is about 4800)
#   HEED_GPU_QUICK=1   fewer sizes, shorter timings, the small models only
#   HEED_GPU_MODELS    training models (default gpt,seq2seq,gpt-large,seq2seq-large)
#   HEED_GPU_STEPS     timed training steps per model (default 10, after 3 warm-up steps)
#   HEED_GPU_PRECISIONS  training precisions, each side by side with PyTorch
#                      (default fp32,tf32,bf16): fp32; tf32 = TF32 matmuls
#                      (PyTorch: allow_tf32); bf16 = mixed precision (heed's
#                      AutocastGuard, PyTorch's torch.autocast(dtype=bfloat16))
#   HEED_GPU_TF32=1    older spelling of HEED_GPU_PRECISIONS=tf32
#   HEED_GPU_BUDGET    seconds for the whole run (default 300): a program that
#                      would start with less than 20 s left is skipped, and each
#                      runs under `timeout` with what is left, so the results
#                      are always written
#   HEED_GPU_RAW_DIR   a folder to keep the raw JSON lines and logs in
#   HEED_BENCH_NOTE    a line of text added under the tables
# Exit status 3 when a program failed or timed out (the results are written
# anyway, the failures listed under the tables).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
build="${1:-build-cuda}"
gpu_bench="$build/bench/gpu_bench"
train_bench="$build/bench/train_bench"
quick="${HEED_GPU_QUICK:-}"
steps="${HEED_GPU_STEPS:-10}"
budget="${HEED_GPU_BUDGET:-300}"
if [[ -n "$quick" ]]; then
  models="${HEED_GPU_MODELS:-gpt,seq2seq}"
else
  models="${HEED_GPU_MODELS:-gpt,seq2seq,gpt-large,seq2seq-large}"
fi
threads="$(nproc 2>/dev/null || echo 4)"
((threads > 16)) && threads=16

for bin in "$gpu_bench" "$train_bench"; do
  if [[ ! -x "$bin" ]]; then
    echo "run_gpu.sh: no $bin; build heed with -DHEED_CUDA=ON -DHEED_BUILD_BENCH=ON in $build first" \
         "(tools/gpu_check.sh does both)" >&2
    exit 1
  fi
done

command_line="$(bench_command_line "bench/run_gpu.sh $*" HEED_PEAK_GBS HEED_GPU_QUICK HEED_GPU_MODELS HEED_GPU_STEPS \
  HEED_GPU_TF32 HEED_GPU_PRECISIONS)"
precisions="${HEED_GPU_PRECISIONS:-$([[ ${HEED_GPU_TF32:-0} == 1 ]] && echo tf32 || echo fp32,tf32,bf16)}"

raw="${HEED_GPU_RAW_DIR:-}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
deadline=$((SECONDS + budget))
reserve=15  # seconds kept for writing the results
any_failed=0

# run NAME OUTFILE -- command...: under `timeout` with the time left; stdout
# (JSON lines) appended to OUTFILE, everything to NAME.log.
run() {
  local name=$1 outfile=$2
  shift 3
  local left=$((deadline - SECONDS - reserve))
  if ((left < 20)); then
    echo "run_gpu.sh: skipping $name: out of time (HEED_GPU_BUDGET=$budget)" >&2
    echo "{\"skipped\": \"$name\", \"why\": \"out of time\"}" >> "$tmp/skipped.jsonl"
    return 0
  fi
  echo "== $name (at most ${left} s)" >&2
  local status=0
  timeout --kill-after=5 "$left" "$@" > "$tmp/$name.out" 2> "$tmp/$name.log" || status=$?
  cat "$tmp/$name.out" >> "$outfile"
  cat "$tmp/$name.out" "$tmp/$name.log" >&2
  if ((status != 0)); then
    echo "run_gpu.sh: $name exited with status $status$( ((status == 124)) && echo ' (timed out)')" >&2
    echo "{\"failed\": \"$name\", \"status\": $status}" >> "$tmp/skipped.jsonl"
    any_failed=1
  fi
  return 0
}

# A Python whose torch sees a GPU.
python=""
candidates=()
[[ -n "${HEED_TORCH_PYTHON:-}" ]] && candidates+=("$HEED_TORCH_PYTHON")
candidates+=("$(command -v python3 || true)" /usr/bin/python3)
for p in "${candidates[@]}"; do
  [[ -n "$p" && -x "$p" ]] || continue
  if timeout 60 "$p" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python="$p"
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "run_gpu.sh: no Python with a CUDA-enabled torch found (set HEED_TORCH_PYTHON); measuring heed alone" >&2
fi

quick_flag=()
[[ -n "$quick" ]] && quick_flag=(--quick)
peak_flag=()
[[ -n "${HEED_PEAK_GBS:-}" ]] && peak_flag=(--peak-gbs "$HEED_PEAK_GBS")

touch "$tmp/heed.jsonl" "$tmp/torch.jsonl" "$tmp/skipped.jsonl"
run heed_kernels "$tmp/heed.jsonl" -- "$gpu_bench" "${quick_flag[@]}" "${peak_flag[@]}"
if [[ -n "$python" ]]; then
  run torch_kernels "$tmp/torch.jsonl" -- "$python" "$here/gpu_torch.py" "${quick_flag[@]}"
fi
IFS=',' read -ra model_list <<< "$models"
IFS=',' read -ra precision_list <<< "$precisions"
for precision in "${precision_list[@]}"; do
  for model in "${model_list[@]}"; do
    run "heed_train_${model}_$precision" "$tmp/heed.jsonl" -- "$train_bench" --device cuda --model "$model" \
      --threads "$threads" --steps "$steps" --precision "$precision"
    if [[ -n "$python" ]]; then
      run "torch_train_${model}_$precision" "$tmp/torch.jsonl" -- env OMP_NUM_THREADS="$threads" "$python" \
        "$here/train_torch.py" --device cuda --model "$model" --threads "$threads" --steps "$steps" \
        --precision "$precision"
    fi
  done
done

if [[ -n "$raw" ]]; then
  mkdir -p "$raw" && cp "$tmp"/*.jsonl "$tmp"/*.log "$raw"/ 2>/dev/null
fi

summary_python="$(command -v python3 || echo /usr/bin/python3)"
# Without set -e: a failed summary leaves RESULTS.md as it was and the exit status as the runs made it.
if "$summary_python" - "$tmp" "$command_line" "${HEED_BENCH_NOTE:-}" "${HEED_PEAK_GBS:-}" "$(bench_date)" \
  >"$tmp/section.md" <<'PYEOF'
import json
import os
import sys

tmp, command_line, note, peak_env, date = sys.argv[1:6]


def read_jsonl(name):
    out = []
    path = os.path.join(tmp, name)
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    return out


heed, torch, skipped = read_jsonl("heed.jsonl"), read_jsonl("torch.jsonl"), read_jsonl("skipped.jsonl")


def pick(records, kind, key=None):
    return {r[key]: r for r in records if r.get("kind") == kind} if key else [r for r in records if r.get("kind") == kind]


dev = next(iter(pick(heed, "device")), {})
tdev = next(iter(pick(torch, "device")), {})
peak = float(peak_env) if peak_env else float(dev.get("peak_gbs", 0) or 0)


def err(r):
    return "error: " + r["error"].replace("|", "/")[:90] if r and "error" in r else None


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


lines = ["## GPU (float32, CUDA)", ""]
if dev:
    lines.append(f"- GPU: {dev.get('name', '?')}, {dev.get('sm_count', '?')} SMs, compute capability {dev.get('cc', '?')}, "
                 f"{dev.get('memory_gib', '?')} GiB; peak memory bandwidth {peak:.0f} GB/s "
                 f"({'HEED_PEAK_GBS' if peak_env else dev.get('peak_from', '?')}; memory clock "
                 f"{dev.get('memory_clock_mhz', '?')} MHz x {dev.get('bus_bits', '?')} bits gives "
                 f"{dev.get('peak_gbs_computed', '?')} GB/s)")
    rt = dev.get("cuda_runtime", 0)
    lines.append(f"- CUDA runtime {rt // 1000}.{rt % 1000 // 10}, driver API {dev.get('driver', 0) // 1000}."
                 f"{dev.get('driver', 0) % 1000 // 10}; heed's TF32 switch: "
                 f"{'yes' if dev.get('tf32_switch') else 'not in this build'}")
else:
    lines.append("- gpu_bench gave no device line (see the log)")
lines.append(f"- torch: {tdev.get('torch', 'not measured')}" + (f" (CUDA {tdev.get('cuda')}), eager mode" if tdev else ""))
lines.append(f"- Date: {date}")
lines.append(f"- Command: `{command_line}` (bench/gpu_bench.cpp, bench/gpu_torch.py, bench/train_bench.cpp, "
             "bench/train_torch.py)")
lines.append("- Kernels: CUDA events around n calls after 2 warm-up calls (about 0.2 s each), mean per call, "
             "host-side work included where the GPU waits for it. float32 unless the math column says tf32 "
             "(torch's default is no TF32).")
lines.append("")

# ---- matmul
mm_heed = pick(heed, "matmul")
mm_torch = {(r["name"], r["math"]): r for r in pick(torch, "matmul")}
if mm_heed:
    lines += ["### Matmul: heed vs cuBLAS called directly (same buffers) vs torch", "",
              "| product | math | heed ms | heed TFLOP/s | cuBLAS TFLOP/s | heed / cuBLAS speed | torch TFLOP/s "
              "| heed / torch speed | max rel. diff to cuBLAS |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in mm_heed:
        t = mm_torch.get((r["name"], r["math"]))
        if err(r):
            lines.append(f"| {r['name']} | {r['math']} | {err(r)} | | | | {fmt(t and t.get('tflops'))} | | |")
            continue
        ratio_cublas = r["cublas_ms"] / r["ms"]
        tt = t.get("tflops") if t and "error" not in t else None
        ratio_torch = (t["ms"] / r["ms"]) if tt else None
        diff = r.get("max_rel_diff", -1)
        lines.append(f"| {r['name']} | {r['math']} | {r['ms']:.3f} | {r['tflops']:.1f} | {r['cublas_tflops']:.1f} | "
                     f"{ratio_cublas:.2f} | {fmt(tt)} | {fmt(ratio_torch, '.2f')} | "
                     f"{'-' if diff < 0 else format(diff, '.1e')} |")
    lines.append("")

# ---- rows
rows_heed = pick(heed, "row")
rows_torch = {r["op"]: r for r in pick(torch, "row")}
if rows_heed:
    lines += [f"### Row kernels: achieved GB/s of the least traffic (% of {peak:.0f} GB/s)", "",
              "Forward reads x and writes y (cross_entropy: reads the logits); backward reads y or x and dy and writes "
              "dx (cross_entropy: reads the logits, writes their gradient). Backward time = (forward + backward) - "
              "forward, through autograd on both sides.", "",
              "| op | shape | heed fwd ms | heed fwd GB/s | torch fwd GB/s | heed bwd GB/s | torch bwd GB/s "
              "| heed / torch speed, fwd + bwd |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]

    def gbs(v):
        return "-" if v is None else (f"{v:.0f} ({100 * v / peak:.0f}%)" if peak > 0 else f"{v:.0f}")

    for r in rows_heed:
        t = rows_torch.get(r["op"])
        t = t if t and "error" not in t else None
        shape = f"[{r['rows']}, {r['cols']}]"
        if err(r):
            lines.append(f"| {r['op']} | {shape} | {err(r)} | | {gbs(t and t['fwd_gbs'])} | | {gbs(t and t['bwd_gbs'])} | |")
            continue
        speed = t["fwdbwd_ms"] / r["fwdbwd_ms"] if t else None
        lines.append(f"| {r['op']} | {shape} | {r['fwd_ms']:.3f} | {gbs(r['fwd_gbs'])} | {gbs(t and t['fwd_gbs'])} | "
                     f"{gbs(r['bwd_gbs'])} | {gbs(t and t['bwd_gbs'])} | {fmt(speed, '.2f')} |")
    lines.append("")

# ---- fused attention
at_heed = pick(heed, "attention")
at_torch = {(r["dtype"], r["d"], r["T"], r["causal"]): r for r in pick(torch, "attention")}
if at_heed:
    lines += ["### Fused attention: heed's kernel vs torch's F.scaled_dot_product_attention", "",
              "Forward + backward through autograd, q, k, v [B 4, H 16, T, d]; TFLOP/s counted as FlashAttention "
              "does (forward 4 B H T^2 d, halved when causal, backward 2.5x). bf16: torch's flash kernel; fp32: "
              "its memory-efficient kernel; tf32: float32 with TF32 matmuls allowed on both sides. Targets "
              "(issue 12): bf16 at least 0.6x torch's TFLOP/s, float32 at least 1.0x.", "",
              "| dtype | d | T | causal | heed ms | heed TFLOP/s | torch TFLOP/s | heed / torch speed |",
              "|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in at_heed:
        t = at_torch.get((r["dtype"], r["d"], r["T"], r["causal"]))
        t = t if t and "error" not in t else None
        head = f"| {r['dtype']} | {r['d']} | {r['T']} | {'yes' if r['causal'] else 'no'} |"
        if err(r):
            lines.append(f"{head} {err(r)} | | {fmt(t and t['tflops'])} | |")
            continue
        lines.append(f"{head} {r['ms']:.3f} | {r['tflops']:.1f} | {fmt(t and t['tflops'])} | "
                     f"{fmt(t and t['ms'] / r['ms'], '.2f')} |")
    lines.append("")

# ---- training
def precision_of(r):
    return r.get("precision") or ("tf32" if r.get("tf32") else "fp32")


tr_heed = {(r["model"], precision_of(r)): r for r in heed if "model" in r}
tr_torch = {(r["model"], precision_of(r)): r for r in torch if "model" in r}
order = ["gpt", "seq2seq", "gpt-large", "seq2seq-large"]
p_order = ["fp32", "tf32", "bf16"]
keys = sorted(set(tr_heed) | set(tr_torch),
              key=lambda k: (p_order.index(k[1]) if k[1] in p_order else 9, order.index(k[0]) if k[0] in order else 9, k))
if keys:
    lines += ["### Training step by precision", "",
              "fp32: float32 everywhere; tf32: float32 tensors, TF32 tensor-core matmuls (torch: allow_tf32); "
              "bf16: mixed precision, float32 master weights (heed: AutocastGuard; torch: "
              "torch.autocast(dtype=torch.bfloat16)) around forward and loss.", "",
              "gpt and seq2seq are bench/run_train.sh's CPU models; gpt-large is GPT-2-small-like (12 layers, "
              "d_model 768, 12 heads, context 1024, vocab 32768, B = 8), seq2seq-large Transformer-base (d_model "
              "512, 6 + 6 layers, 8 heads, ff 2048, vocab 32000, B = 64 pairs padded to 128 + 128). One step: "
              "forward, cross_entropy, backward, clip_grad_norm, AdamW; phases end with a device synchronisation. "
              "Peak: bytes in live tensors (heed's caching allocator; torch.cuda.max_memory_allocated), reserved "
              "from the driver in brackets. torch's nn.MultiheadAttention may use its fused attention kernels.", "",
              "| model | precision | shape | params | heed tokens/s | torch tokens/s | heed / torch speed | heed step ms (fwd / bwd / optim) "
              "| torch step ms (fwd / bwd / optim) | heed peak MiB | torch peak MiB | loss heed / torch |",
              "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---|"]

    def parts(r):
        return f"{r['step_ms']:.1f} ({r['forward_ms']:.1f} / {r['backward_ms']:.1f} / {r['optim_ms']:.1f})"

    for key in keys:
        h, t = tr_heed.get(key), tr_torch.get(key)
        ref = h or t
        speed = h["tokens_per_s"] / t["tokens_per_s"] if h and t else None
        lines.append(
            f"| {key[0]} | {key[1]} | {ref['shape']} | {ref['params'] / 1e6:.1f} M | {fmt(h and h['tokens_per_s'], '.0f')} | "
            f"{fmt(t and t['tokens_per_s'], '.0f')} | {fmt(speed, '.2f')} | {parts(h) if h else '-'} | "
            f"{parts(t) if t else '-'} | "
            f"{(format(h['peak_mib'], '.0f') + ' (' + format(h.get('peak_reserved_mib', 0), '.0f') + ')') if h else '-'} | "
            f"{(format(t['peak_mib'], '.0f') + ' (' + format(t.get('peak_reserved_mib', 0), '.0f') + ')') if t else '-'} | "
            f"{fmt(h and h['loss'], '.3f')} / {fmt(t and t['loss'], '.3f')} |")
    lines.append("")

def last_log_line(name):
    try:
        with open(os.path.join(tmp, name + ".log")) as f:
            text = [l.strip() for l in f if l.strip()]
        return text[-1][:160].replace("|", "/") if text else ""
    except OSError:
        return ""


problems = []
for s in skipped:
    if "skipped" in s:
        problems.append(f"{s['skipped']} (skipped: {s.get('why', '?')})")
    elif "failed" in s:
        why = "timed out" if s.get("status") == 124 else f"exit status {s.get('status')}"
        detail = last_log_line(s["failed"])
        problems.append(f"{s['failed']} ({why}{': ' + detail if detail else ''})")
if problems:
    lines.append("Not measured: " + "; ".join(problems))
    lines.append("")
if note:
    lines += [note, ""]
while lines and lines[-1] == "":
    lines.pop()
section = "<!-- gpu:begin -->\n" + "\n".join(lines) + "\n<!-- gpu:end -->"
print(section)
PYEOF
then
  bench_write_section gpu "$tmp/section.md" "$here/RESULTS.md" && cat "$tmp/section.md"
fi
if ((any_failed)); then
  echo "run_gpu.sh: some measurements failed (listed under the tables); the rest are in bench/RESULTS.md" >&2
  exit 3
fi
