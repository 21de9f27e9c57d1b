#!/usr/bin/env bash
# Runs the GEMM benchmark of heed and of torch.mm in the same run and rewrites
# the GEMM section of bench/RESULTS.md (between <!-- gemm:begin --> and
# <!-- gemm:end -->). Builds nothing: pass the gemm_bench binary.
#
#   bench/run_gemm.sh [path/to/gemm_bench]        (default: build/bench/gemm_bench)
#
# Environment:
#   HEED_BENCH_THREADS  threads for both sides (default 2)
#   HEED_BENCH_SIZES    comma-separated square sizes (default 256,512,1024,2048)
#   HEED_BENCH_SHAPES   MxNxK:nn|nt|tn shapes timed after the squares (default:
#                       the matmuls of the translate step, below; "" = none)
#   HEED_BENCH_BF16     1 (default): time heed again with bf16 inputs
#                       (gemm_bench --bf16, heed::cpu::set_allow_bf16_matmul) in
#                       extra columns; 0: float32 only
#   TORCH_BLAS_DIR      optional: a folder holding another libblas.so.3 (e.g. an
#                       unpacked OpenBLAS); torch is then timed a second time with
#                       it first on LD_LIBRARY_PATH, in an extra column
#   HEED_BENCH_PRIORITY=1  run in a new session whose scheduler autogroup has
#                       nice -20 (needs root): on a machine shared with other
#                       people's builds, Linux otherwise splits the CPUs evenly
#                       between sessions and a 2-thread run gets about one core
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
bench_priority "$@"
bench_bin="${1:-build/bench/gemm_bench}"
threads="${HEED_BENCH_THREADS:-2}"
sizes="${HEED_BENCH_SIZES:-256,512,1024,2048}"
# The translate training step's matmuls at its defaults (d_model 256, ff 1024,
# 2000-token vocabularies, 4096-token batches: 1,900 to 3,300 rows of tokens
# per side, about 2,048 typically; HEED_PROFILE=2 lists them): forward x W^T
# (nt), the input gradient dY W (nn), the weight gradient dY^T X (tn).
step_shapes="2048x256x256:nt,2048x1024x256:nt,2048x256x1024:nt,2048x2000x256:nt"
step_shapes+=",2048x256x256:nn,2048x256x1024:nn,2048x1024x256:nn,2048x256x2000:nn"
step_shapes+=",256x256x2048:tn,1024x256x2048:tn,256x1024x2048:tn,2000x256x2048:tn"
shapes="${HEED_BENCH_SHAPES-$step_shapes}"
python=/usr/bin/python3

bench_require_bin "$bench_bin" gemm_bench

command_line="$(bench_command_line "bench/run_gemm.sh $*" HEED_BENCH_THREADS HEED_BENCH_SIZES HEED_BENCH_SHAPES \
  HEED_BENCH_BF16 TORCH_BLAS_DIR HEED_BENCH_PRIORITY)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== heed ($bench_bin, $threads threads)" >&2
"$bench_bin" --threads "$threads" --sizes "$sizes" | tee "$tmp/heed.jsonl" >&2
if [[ -n "$shapes" ]]; then
  "$bench_bin" --threads "$threads" --shapes "$shapes" | tee -a "$tmp/heed.jsonl" >&2
fi
if [[ "${HEED_BENCH_BF16:-1}" == 1 ]]; then
  echo "== heed, bf16 inputs ($bench_bin --bf16, $threads threads)" >&2
  "$bench_bin" --threads "$threads" --sizes "$sizes" --bf16 | grep '"impl"' | tee "$tmp/heed_bf16.jsonl" >&2
  if [[ -n "$shapes" ]]; then
    "$bench_bin" --threads "$threads" --shapes "$shapes" --bf16 | grep '"impl"' | tee -a "$tmp/heed_bf16.jsonl" >&2
  fi
fi
echo "== torch.mm ($threads threads)" >&2
OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
  "$python" "$here/gemm_torch.py" --threads "$threads" --sizes "$sizes" | tee "$tmp/torch.jsonl" >&2
if [[ -n "$shapes" ]]; then
  OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
    "$python" "$here/gemm_torch.py" --threads "$threads" --shapes "$shapes" | tee -a "$tmp/torch.jsonl" >&2
fi
if [[ -n "${TORCH_BLAS_DIR:-}" ]]; then
  echo "== torch.mm with $TORCH_BLAS_DIR/libblas.so.3 ($threads threads)" >&2
  LD_LIBRARY_PATH="$TORCH_BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
    "$python" "$here/gemm_torch.py" --threads "$threads" --sizes "$sizes" | tee "$tmp/torch_alt.jsonl" >&2
fi

"$python" - "$tmp" "$threads" "$command_line" "$(bench_machine unknown)" "$(bench_date)" >"$tmp/section.md" <<'EOF'
import json
import math
import os
import sys

tmp, threads, command_line, machine, date = sys.argv[1:6]


def read_jsonl(name):
    path = os.path.join(tmp, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


heed = read_jsonl("heed.jsonl")
bf16 = read_jsonl("heed_bf16.jsonl")
bf16_by_size = {r["size"]: r for r in bf16 if "size" in r}
bf16_by_shape = {r["shape"]: r for r in bf16 if "shape" in r}
bf16_kernel = bf16[0]["kernel"] if bf16 else None
torch_runs = [("torch", read_jsonl("torch.jsonl"))]
alt = read_jsonl("torch_alt.jsonl")
if alt:
    torch_runs.append(("torch+" + os.path.basename(os.environ.get("TORCH_BLAS_DIR", "alt").rstrip("/")), alt))

peaks = {r["peak"]: r for r in heed if "peak" in r}


def bf16_columns():
    return (" heed bf16 inputs GFLOP/s | bf16 / float32 |", "---:|---:|") if bf16_kernel else ("", "")


def bf16_cells(row, h):
    """The bf16 columns of a row whose float32 rate is h (row: the bf16 result, or None)."""
    if not bf16_kernel:
        return ""
    return f" {row['gflops']:.1f} | {row['gflops'] / h:.2f} |" if row else " - | - |"
heed_rows = {r["size"]: r for r in heed if r.get("impl") == "heed" and "size" in r}
shape_rows = [r for r in heed if r.get("impl") == "heed" and "shape" in r]
kernel = next(iter(list(heed_rows.values()) + shape_rows))["kernel"] if heed_rows or shape_rows else "?"
# The machine's peak is the per-core peak times the threads used (one thread per
# core here); the all-threads-at-once measurement is shown beside it because on
# a shared machine it tells whether the cores were really free during the run.
peak_of = {name: max(p["gflops"], p["gflops_1thread"] * p["threads"]) for name, p in peaks.items()}
peak = max(peak_of.values(), default=0.0)


def blas_note(run):
    info = next((r for r in run if "blas" in r), None)
    if info is None:
        return "unknown"
    libs = [os.path.realpath(p) for p in info["blas"]]
    text = ", ".join(libs) if libs else "none found"
    if any("/blas/libblas.so" in p for p in libs):
        text += " (the netlib reference BLAS, unoptimised; `apt-get install libopenblas0-pthread` switches Debian's torch to OpenBLAS)"
    return f"torch {info.get('torch', '?')}, BLAS: {text}"


lines = ["## CPU GEMM (float32, C = A B, square row-major matrices)", ""]
lines.append(f"- CPU: {machine}")
lines.append(f"- Date: {date}")
lines.append(f"- Threads: {threads} (heed and torch)")
lines.append(f"- heed float micro-kernel: {kernel}")
for name in ("avx512", "avx2"):
    if name in peaks:
        p = peaks[name]
        lines.append(f"- Measured FP32 FMA peak, {name}: {p['gflops_1thread']:.1f} GFLOP/s per core, "
                     f"so {peak_of[name]:.1f} on {p['threads']} threads "
                     f"({p['gflops']:.1f} measured with {p['threads']} threads at once)")
for label, run in torch_runs:
    lines.append(f"- {label}: {blas_note(run)}")
lines.append(f"- Command: `{command_line}`")
lines.append("- Best of repeated runs of about 1 s per size; % of peak is against the highest peak above.")
if bf16_kernel:
    lines.append(f"- heed bf16 inputs: the same products with `heed::cpu::set_allow_bf16_matmul` "
                 f"(`gemm_bench --bf16`): A and B rounded to bf16, float32 sums, kernel {bf16_kernel} "
                 f"(docs/cpu_backend.md); its % of peak is against the float32 FMA peak, which bf16 pairs "
                 f"can double")
lines.append("")
header = "| size | heed GFLOP/s |"
rule = "|---:|---:|"
for label, _ in torch_runs:
    header += f" {label} GFLOP/s | heed / {label} |"
    rule += "---:|---:|"
header += " heed % of peak |" + bf16_columns()[0]
rule += "---:|" + bf16_columns()[1]
lines += [header, rule]
for size in sorted(heed_rows):
    h = heed_rows[size]["gflops"]
    row = f"| {size} | {h:.1f} |"
    for _, run in torch_runs:
        t = next((r["gflops"] for r in run if r.get("size") == size), None)
        row += f" {t:.1f} | {h / t:.2f} |" if t else " - | - |"
    row += f" {100 * h / peak:.0f}% |" if peak else " - |"
    row += bf16_cells(bf16_by_size.get(size), h)
    lines.append(row)
if shape_rows:
    lines += ["", "At the translate training step's shapes (C[M, N] = A[M, K] B[K, N]; nt: B stored transposed, "
              "a Linear's forward x W^T; nn: the input gradient dY W; tn: A stored transposed, a weight's "
              "gradient dY^T X):", ""]
    header = "| M x N x K | layout | heed GFLOP/s |"
    rule = "|---|---|---:|"
    for label, _ in torch_runs:
        header += f" {label} GFLOP/s | heed / {label} |"
        rule += "---:|---:|"
    lines += [header + " heed % of peak |" + bf16_columns()[0], rule + "---:|" + bf16_columns()[1]]
    for r in shape_rows:
        dims, layout = r["shape"].split(":")
        h = r["gflops"]
        row = f"| {dims} | {layout} | {h:.1f} |"
        for _, run in torch_runs:
            t = next((x["gflops"] for x in run if x.get("shape") == r["shape"]), None)
            row += f" {t:.1f} | {h / t:.2f} |" if t else " - | - |"
        row += f" {100 * h / peak:.0f}% |" if peak else " - |"
        row += bf16_cells(bf16_by_shape.get(r["shape"]), h)
        lines.append(row)
    flops = {r["shape"]: 2 * math.prod(int(x) for x in r["shape"].split(":")[0].split("x")) for r in shape_rows}
    total_time = sum(flops[r["shape"]] / r["gflops"] for r in shape_rows)
    lines += ["", f"All step shapes together (each run once): heed {sum(flops.values()) / total_time:.1f} GFLOP/s, "
              f"{100 * sum(flops.values()) / total_time / peak:.0f}% of peak." if peak else ""]
    if bf16_kernel and all(r["shape"] in bf16_by_shape for r in shape_rows):
        bf16_time = sum(flops[r["shape"]] / bf16_by_shape[r["shape"]]["gflops"] for r in shape_rows)
        lines[-1] += (f" With bf16 inputs: {sum(flops.values()) / bf16_time:.1f} GFLOP/s, "
                      f"{total_time / bf16_time:.2f}x float32.")
section = "<!-- gemm:begin -->\n" + "\n".join(lines) + "\n<!-- gemm:end -->"
print(section)
EOF
bench_write_section gemm "$tmp/section.md" "$here/RESULTS.md"
cat "$tmp/section.md"
