#!/usr/bin/env bash
# Times forward + backward of softmax attention (composed, and heed's fused
# FlashAttention-2 kernel, dense, causal and with a sliding window) and linear
# attention (causal and not) at growing sequence lengths, in heed and in
# PyTorch (its composed attention: 1.13 has no fused one), each
# configuration in a process of its own (so that its peak resident memory is
# its own), and rewrites the attention section of bench/RESULTS.md (between
# <!-- attention:begin --> and <!-- attention:end -->). Builds nothing: pass
# the attention_bench binary.
#
#   bench/run_attention.sh [path/to/attention_bench]   (default: build/bench/attention_bench)
#
# Environment:
#   HEED_BENCH_THREADS    threads for both sides (default 2)
#   HEED_BENCH_LENGTHS    comma-separated T (default 256,512,1024,2048,4096,8192)
#   HEED_BENCH_SOFTMAX_MAX_T  longest T for composed softmax attention (default
#                         8192; its [T, T] matrices take ~6 GiB at T = 8192)
#   HEED_BENCH_WINDOW     the sliding window's width (default 256)
#   HEED_BENCH_MIN_TIME   seconds of timed steps per configuration (default 0.5;
#                         at least 2 steps after a warm-up one)
#   HEED_BENCH_PRIORITY=1 run in a new session whose scheduler autogroup has
#                         nice -20 (needs root), as bench/run_gemm.sh does
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
bench_priority "$@"
bench_bin="${1:-build/bench/attention_bench}"
threads="${HEED_BENCH_THREADS:-2}"
lengths="${HEED_BENCH_LENGTHS:-256,512,1024,2048,4096,8192}"
softmax_max_t="${HEED_BENCH_SOFTMAX_MAX_T:-8192}"
min_time="${HEED_BENCH_MIN_TIME:-0.5}"
window="${HEED_BENCH_WINDOW:-256}"
python=/usr/bin/python3
B=1 H=4 D=64

bench_require_bin "$bench_bin" attention_bench

command_line="$(bench_command_line "bench/run_attention.sh $*" HEED_BENCH_THREADS HEED_BENCH_LENGTHS \
  HEED_BENCH_SOFTMAX_MAX_T HEED_BENCH_MIN_TIME HEED_BENCH_WINDOW HEED_BENCH_PRIORITY)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

common=(--B "$B" --H "$H" --d "$D" --window "$window" --threads "$threads" --min-time "$min_time")
# PyTorch's twin of each heed row: its composed attention with the same mask
# (run once per (twin, T) and shared by the composed and the fused heed rows).
twin() { case "$1" in fused) echo softmax ;; fused_*) echo "softmax_${1#fused_}" ;; *) echo "$1" ;; esac; }
for impl in softmax softmax_causal fused fused_causal fused_window linear linear_causal; do
  for T in ${lengths//,/ }; do
    if [[ "$impl" == softmax* && "$T" -gt "$softmax_max_t" ]]; then continue; fi
    echo "== $impl T=$T" >&2
    "$bench_bin" --impl "$impl" --T "$T" "${common[@]}" | tee -a "$tmp/heed.jsonl" >&2
    torch_impl="$(twin "$impl")"
    if [[ "$torch_impl" == softmax* && "$T" -gt "$softmax_max_t" ]]; then continue; fi
    if grep -q "\"impl\": \"$torch_impl\", .*\"T\": $T," "$tmp/torch.jsonl" 2>/dev/null; then continue; fi
    OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
      "$python" "$here/attention_torch.py" --impl "$torch_impl" --T "$T" "${common[@]}" | tee -a "$tmp/torch.jsonl" >&2
  done
done

"$python" - "$tmp" "$threads" "$command_line" "$B" "$H" "$D" "$window" "$(bench_machine unknown)" "$(bench_date)" \
  >"$tmp/section.md" <<'EOF'
import json
import os
import sys

tmp, threads, command_line, B, H, D, window, machine, date = sys.argv[1:10]


def read_jsonl(name):
    with open(os.path.join(tmp, name)) as f:
        return {(r["impl"], r["T"]): r for r in map(json.loads, (l for l in f if l.strip().startswith("{")))}


heed, torch_runs = read_jsonl("heed.jsonl"), read_jsonl("torch.jsonl")
torch_version = next(iter(torch_runs.values()), {}).get("torch", "?")

names = {"softmax": "softmax, composed", "softmax_causal": "softmax, composed, causal",
         "fused": "softmax, fused", "fused_causal": "softmax, fused, causal",
         "fused_window": f"softmax, fused, window {window}", "linear": "linear", "linear_causal": "linear, causal"}
twins = {"fused": "softmax", "fused_causal": "softmax_causal", "fused_window": "softmax_window"}


def gflops(impl, T):
    """FLOPs counted as FlashAttention does: forward 4 B H T S d (S: keys per
    query; halved when causal), backward 2.5x the forward."""
    if impl.startswith("linear"):
        return None
    w = int(window)
    if impl.endswith("window"):  # query p attends min(p + 1, w) keys
        pairs = T * (T + 1) / 2 if T <= w else w * (w + 1) / 2 + (T - w) * w
    else:
        pairs = T * T * (0.5 if impl.endswith("causal") else 1.0)
    return 3.5 * 4.0 * int(B) * int(H) * pairs * int(D) / 1e9


lines = ["## Attention: composed, fused (FlashAttention-2) and linear attention (float32, forward + backward)", ""]
lines.append(f"- CPU: {machine}; threads: {threads} (heed and torch {torch_version})")
lines.append(f"- Date: {date}")
lines.append(f"- Shapes: q, k, v [B={B}, H={H}, T, d={D}], all requiring grad; one step is "
             "`out = attention(q, k, v); out.backward(g)`")
lines.append("- softmax, composed: `softmax(q k^T / sqrt(d)) v` with every intermediate a tensor (causal: -inf above "
             "the diagonal first), what `nn::scaled_dot_product_attention` runs with `AttentionImpl::Composed`; "
             "fused: the same call with `AttentionImpl::Fused` (FlashAttention-2, docs/attention.md; the window "
             f"{window} is causal, p - {window} < j <= p, a pattern whose masked tiles the kernel skips); linear: "
             "`nn::linear_attention` (phi = elu + 1; causal in chunks of 64 rows with a carried state). "
             "torch runs its composed attention with the same mask beside every softmax row (PyTorch 1.13 has no "
             "fused attention) and the same linear attention (bench/attention_torch.py).")
lines.append("- GFLOP/s counts FLOPs as FlashAttention does: forward 4 B H T S d with S the keys per query (T, or "
             "the window), halved when causal; backward 2.5x the forward.")
lines.append("- Time: best step of a warm-up plus at least 2 timed steps. Peak: the process's resident high-water "
             "mark (VmHWM) minus its resident set before the inputs were made, one process per row, so it "
             "counts inputs, intermediates and gradients but not the program or its libraries.")
lines.append(f"- Command: `{command_line}`")
lines.append("")
lines.append("| attention | T | heed ms | heed GFLOP/s | torch ms | heed / torch time | heed peak MiB | torch peak MiB "
             "| heed / torch peak |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for impl in names:
    for T in sorted(t for (i, t) in heed if i == impl):
        h, t = heed[(impl, T)], torch_runs.get((twins.get(impl, impl), T))
        f = gflops(impl, T)
        rate = f"{f / (h['ms'] / 1e3):.0f}" if f else "-"
        row = f"| {names[impl]} | {T} | {h['ms']:.1f} | {rate} |"
        if t:
            row += (f" {t['ms']:.1f} | {h['ms'] / t['ms']:.2f} | {h['peak_mib']:.0f} | {t['peak_mib']:.0f} |"
                    f" {h['peak_mib'] / max(t['peak_mib'], 1e-9):.2f} |")
        else:
            row += f" - | - | {h['peak_mib']:.0f} | - | - |"
        lines.append(row)

lines.append("")
for kind, comp, fused in (("non-causal", "softmax", "fused"), ("causal", "softmax_causal", "fused_causal")):
    both = sorted(T for (i, T) in heed if i == fused and (comp, T) in heed)
    for T in sorted(set(t for t in both if t == 2048) | set(both[-1:])):  # issue 12's point and the longest
        c, f = heed[(comp, T)], heed[(fused, T)]
        t = torch_runs.get((comp, T))
        vs_torch = f", {t['peak_mib'] / max(f['peak_mib'], 1e-9):.0f}x below torch's {t['peak_mib']:.0f}" if t else ""
        lines.append(f"- heed, {kind}, T = {T}: fused attention is {c['ms'] / f['ms']:.1f}x faster than composed "
                     f"({gflops(fused, T) / (f['ms'] / 1e3):.0f} GFLOP/s) and peaks at {f['peak_mib']:.0f} MiB "
                     f"({c['peak_mib'] / max(f['peak_mib'], 1e-9):.0f}x below composed{vs_torch}).")
longest = sorted(T for (i, T) in heed if i == "fused_window" and ("fused_causal", T) in heed)
if longest:
    T = longest[-1]
    w, c = heed[("fused_window", T)], heed[("fused_causal", T)]
    lines.append(f"- heed, T = {T}: the fused sliding window {window} takes {w['ms'] / c['ms']:.3f} of fused dense "
                 f"causal attention's time ({w['ms']:.0f} vs {c['ms']:.0f} ms): masked tiles are skipped, so it "
                 "costs O(T w), not O(T^2).")
# How much linear attention saves in heed at the longest length both ran.
common = sorted(T for (i, T) in heed if i == "fused" and ("linear", T) in heed)
if common:
    T = common[-1]
    for kind, soft, lin in (("non-causal", "fused", "linear"), ("causal", "fused_causal", "linear_causal")):
        if (soft, T) in heed and (lin, T) in heed:
            s, l = heed[(soft, T)], heed[(lin, T)]
            lines.append(f"- heed, {kind}, T = {T}: linear attention takes {l['ms'] / s['ms']:.2f} of fused softmax "
                         f"attention's time and {l['peak_mib'] / max(s['peak_mib'], 1e-9):.2f} of its peak memory.")
section = "<!-- attention:begin -->\n" + "\n".join(lines) + "\n<!-- attention:end -->"
print(section)
EOF
bench_write_section attention "$tmp/section.md" "$here/RESULTS.md"
cat "$tmp/section.md"
