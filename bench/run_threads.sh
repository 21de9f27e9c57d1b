#!/usr/bin/env bash
# How the main job's training step scales with threads: `translate train` at
# its defaults (the schedule of the default run on this machine class, fixed
# with --steps so both runs do the same work), stopped after STEPS steps, once
# per thread count; the programs' own "training steps alone" throughput (no
# evaluation, data preparation or decoding). Writes the threads section of
# bench/RESULTS.md.
#
#   bench/run_threads.sh [BUILD_DIR] [--no-results]
#
# Environment: STEPS (default 150), THREAD_COUNTS (default "1 2"), WORK (default /tmp/heed_threads).
# Run it on an otherwise idle machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
cd "$(dirname "$0")/.."

BUILD=build
WRITE_RESULTS=1
for arg in "$@"; do
  case $arg in
    --no-results) WRITE_RESULTS=0 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) BUILD=$arg ;;
  esac
done
TRANSLATE=$BUILD/examples/translate
[[ -x $TRANSLATE ]] || { echo "run_threads.sh: $TRANSLATE is missing: build heed first (Release)" >&2; exit 1; }
STEPS=${STEPS:-150}
WORK=${WORK:-/tmp/heed_threads}
rm -rf "$WORK" && mkdir -p "$WORK"

for threads in ${THREAD_COUNTS:-1 2}; do
  echo "== $threads thread(s)" >&2
  "$TRANSLATE" train --steps 2777 --stop-at "$STEPS" --eval-every 100000 --save-every 100000 --beam 1 --show 0 \
    --threads "$threads" --out "$WORK/run$threads" >"$WORK/threads$threads.log" 2>&1 || {
    echo "run_threads.sh: the $threads-thread run failed; the end of its log:" >&2
    tail -20 "$WORK/threads$threads.log" >&2
    exit 1
  }
  grep -o "training steps alone: .*" "$WORK/threads$threads.log" >&2
done

/usr/bin/python3 - "$WORK" "$(bench_machine "$(uname -m)")" "$(bench_date)" "$STEPS" ${THREAD_COUNTS:-1 2} \
  >"$WORK/section.md" <<'EOF'
import re, subprocess, sys
from pathlib import Path

work, machine, date, steps, counts = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
speed = {}
for n in counts:
    found = re.search(r"= (\d+) target tokens/s", (work / f"threads{n}.log").read_text())
    if not found:
        sys.exit(f"run_threads.sh: no throughput in the {n}-thread log")
    speed[n] = float(found.group(1))
base = speed[counts[0]]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = "\n".join(f"| {n} | {speed[n]:.0f} | {speed[n] / base:.2f}x |" for n in counts)
table = f"""<!-- threads:begin -->
## Thread scaling of the main job's training step (CPU)

- CPU: {machine}; date: {date}; heed at {commit}, Release build
- `translate train` at its defaults (dropout 0.2, 4096-token batches, `--ema 0.998`), the first {steps} steps of
  the 2,777-step schedule; target tokens/s of the training steps alone (the program's own count)
- Command: `bench/run_threads.sh BUILD_DIR`

| threads | target tokens/s | speed-up over {counts[0]} |
|---|---:|---:|
{rows}
<!-- threads:end -->"""
print(table)
EOF
cat "$WORK/section.md"
if [[ $WRITE_RESULTS == 1 ]]; then
  bench_write_section threads "$WORK/section.md" bench/RESULTS.md
  echo "wrote bench/RESULTS.md" >&2
fi
