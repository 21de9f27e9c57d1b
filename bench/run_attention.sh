#!/usr/bin/env bash
# Times forward + backward of softmax attention and linear attention (causal
# and not) at growing sequence lengths, in heed and in PyTorch, each
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
#   HEED_BENCH_SOFTMAX_MAX_T  longest T for softmax attention (default 8192;
#                         its [T, T] matrices take ~6 GiB at T = 8192)
#   HEED_BENCH_MIN_TIME   seconds of timed steps per configuration (default 0.5;
#                         at least 2 steps after a warm-up one)
#   HEED_BENCH_PRIORITY=1 run in a new session whose scheduler autogroup has
#                         nice -20 (needs root), as bench/run_gemm.sh does
set -euo pipefail

if [[ "${HEED_BENCH_PRIORITY:-}" == 1 && -z "${HEED_BENCH_PRIORITY_SET:-}" ]]; then
  export HEED_BENCH_PRIORITY_SET=1
  exec setsid -w bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null ||
    echo "run_attention.sh: could not raise the autogroup priority; timing as is" >&2
    exec "$0" "$@"' "$0" "$@"
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_bin="${1:-build/bench/attention_bench}"
threads="${HEED_BENCH_THREADS:-2}"
lengths="${HEED_BENCH_LENGTHS:-256,512,1024,2048,4096,8192}"
softmax_max_t="${HEED_BENCH_SOFTMAX_MAX_T:-8192}"
min_time="${HEED_BENCH_MIN_TIME:-0.5}"
python=/usr/bin/python3
B=1 H=4 D=64

if [[ ! -x "$bench_bin" ]]; then
  echo "run_attention.sh: no attention_bench binary at '$bench_bin'; build it first" \
       "(cmake --build build --target attention_bench) or pass its path" >&2
  exit 1
fi

command_line="bench/run_attention.sh $*"
for var in HEED_BENCH_THREADS HEED_BENCH_LENGTHS HEED_BENCH_SOFTMAX_MAX_T HEED_BENCH_MIN_TIME HEED_BENCH_PRIORITY; do
  if [[ -n "${!var:-}" ]]; then command_line="$var=${!var} $command_line"; fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

common=(--B "$B" --H "$H" --d "$D" --threads "$threads" --min-time "$min_time")
for impl in softmax softmax_causal linear linear_causal; do
  for T in ${lengths//,/ }; do
    if [[ "$impl" == softmax* && "$T" -gt "$softmax_max_t" ]]; then continue; fi
    echo "== $impl T=$T" >&2
    "$bench_bin" --impl "$impl" --T "$T" "${common[@]}" | tee -a "$tmp/heed.jsonl" >&2
    OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
      "$python" "$here/attention_torch.py" --impl "$impl" --T "$T" "${common[@]}" | tee -a "$tmp/torch.jsonl" >&2
  done
done

"$python" - "$tmp" "$here/RESULTS.md" "$threads" "$command_line" "$B" "$H" "$D" <<'EOF'
import datetime
import json
import os
import re
import sys

tmp, results_path, threads, command_line, B, H, D = sys.argv[1:8]


def read_jsonl(name):
    with open(os.path.join(tmp, name)) as f:
        return {(r["impl"], r["T"]): r for r in map(json.loads, (l for l in f if l.strip().startswith("{")))}


heed, torch_runs = read_jsonl("heed.jsonl"), read_jsonl("torch.jsonl")
torch_version = next(iter(torch_runs.values()), {}).get("torch", "?")
cpu = "unknown"
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break

names = {"softmax": "softmax", "softmax_causal": "softmax, causal", "linear": "linear",
         "linear_causal": "linear, causal"}
lines = ["## Attention: softmax vs linear attention (float32, forward + backward)", ""]
lines.append(f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; threads: {threads} (heed and torch {torch_version})")
lines.append(f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
lines.append(f"- Shapes: q, k, v [B={B}, H={H}, T, d={D}], all requiring grad; one step is "
             "`out = attention(q, k, v); out.backward(g)`")
lines.append("- softmax: composed `softmax(q k^T / sqrt(d)) v` (causal: -inf above the diagonal first); "
             "linear: `nn::linear_attention` (phi = elu + 1; causal in chunks of 64 rows with a carried state). "
             "torch runs the same ops (bench/attention_torch.py).")
lines.append("- Time: best step of a warm-up plus at least 2 timed steps. Peak: the process's resident high-water "
             "mark (VmHWM) minus its resident set before the inputs were made, one process per row, so it "
             "counts inputs, intermediates and gradients but not the program or its libraries.")
lines.append(f"- Command: `{command_line}`")
lines.append("")
lines.append("| attention | T | heed ms | torch ms | heed / torch time | heed peak MiB | torch peak MiB "
             "| heed / torch peak |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
for impl in names:
    for T in sorted(t for (i, t) in heed if i == impl):
        h, t = heed[(impl, T)], torch_runs.get((impl, T))
        row = f"| {names[impl]} | {T} | {h['ms']:.1f} |"
        if t:
            row += (f" {t['ms']:.1f} | {h['ms'] / t['ms']:.2f} | {h['peak_mib']:.0f} | {t['peak_mib']:.0f} |"
                    f" {h['peak_mib'] / max(t['peak_mib'], 1e-9):.2f} |")
        else:
            row += f" - | - | {h['peak_mib']:.0f} | - | - |"
        lines.append(row)

# How much linear attention saves in heed at the longest length both ran.
common = sorted(T for (i, T) in heed if i == "softmax" and ("linear", T) in heed)
if common:
    T = common[-1]
    lines.append("")
    for kind, soft, lin in (("non-causal", "softmax", "linear"), ("causal", "softmax_causal", "linear_causal")):
        if (soft, T) in heed and (lin, T) in heed:
            s, l = heed[(soft, T)], heed[(lin, T)]
            lines.append(f"- heed, {kind}, T = {T}: linear attention is {s['ms'] / l['ms']:.0f}x faster than softmax "
                         f"attention and peaks {s['peak_mib'] / max(l['peak_mib'], 1e-9):.0f}x lower.")
section = "<!-- attention:begin -->\n" + "\n".join(lines) + "\n<!-- attention:end -->"

text = open(results_path).read() if os.path.exists(results_path) else "# heed benchmark results\n"
pattern = re.compile(r"<!-- attention:begin -->.*?<!-- attention:end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
with open(results_path, "w") as f:
    f.write(text)
print(section)
EOF
