#!/usr/bin/env bash
# Data-parallel scaling on this machine: the main jobs' training steps
# (`translate train` and `lm train` at their defaults, stopped after STEPS
# steps of the full schedule) in one process with all the cores' threads and
# in 2 processes under mpirun with the threads split between them, so the
# total matches; plus one process with one thread, for what a rank alone
# does. Each run reports its own "training steps alone" throughput (no
# evaluation, data preparation or decoding) and, with several ranks, what the
# gradients' all-reduces took per step. PyTorch (Debian's python3-torch) trains
# the same lm steps the same three ways (bench/lm_torch.py on heed's export;
# --ranks 2: its DistributedDataParallel over gloo) in the same run. Writes
# the ranks section of bench/RESULTS.md.
#
#   bench/run_ranks.sh [BUILD_DIR] [--no-results]
#
# Environment: STEPS (default 60), WORK (default /tmp/heed_ranks), MPIEXEC
# (default mpirun). Run it on an otherwise idle machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
bench_priority "$@"
cd "$(dirname "$0")/.."

BUILD=build
WRITE_RESULTS=1
for arg in "$@"; do
  case $arg in
    --no-results) WRITE_RESULTS=0 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) BUILD=$arg ;;
  esac
done
bench_require_bin "$BUILD/examples/translate" translate
bench_require_bin "$BUILD/examples/lm" lm
MPIEXEC=${MPIEXEC:-mpirun}
command -v "$MPIEXEC" >/dev/null || { echo "run_ranks.sh: no $MPIEXEC: install openmpi-bin (tools/setup.sh does)" >&2; exit 1; }
STEPS=${STEPS:-60}
WORK=${WORK:-/tmp/heed_ranks}
CORES=$(getconf _NPROCESSORS_ONLN)
rm -rf "$WORK" && mkdir -p "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# run NAME PROCESSES THREADS PROGRAM ARGS...: one timed run, its log in $WORK/NAME.log
run() {
  local name=$1 processes=$2 threads=$3
  shift 3
  local launcher=()
  if ((processes > 1)); then launcher=("$MPIEXEC" -np "$processes" --oversubscribe); fi
  echo "== $name: $processes process(es) x $threads thread(s)" >&2
  "${launcher[@]}" "$@" --threads "$threads" --out "$WORK/$name" >"$WORK/$name.log" 2>&1 || {
    echo "run_ranks.sh: the $name run failed; the end of its log:" >&2
    tail -20 "$WORK/$name.log" >&2
    exit 1
  }
  grep -E "training steps alone|gradient all-reduce" "$WORK/$name.log" >&2
}

TRANSLATE=("$BUILD/examples/translate" train --steps 2777 --stop-at "$STEPS" --eval-every 100000 --save-every 100000
           --beam 1 --show 0)
LM=("$BUILD/examples/lm" train --steps 3000 --stop-at "$STEPS" --eval-every 100000 --save-every 100000 --sample-len 0)
HALF=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))
for job in translate lm; do
  if [[ $job == translate ]]; then args=("${TRANSLATE[@]}"); else args=("${LM[@]}"); fi
  export_flag=()
  if [[ $job == lm ]]; then export_flag=(--export-data "$WORK/lm.h5"); fi
  run "${job}_1x1" 1 1 "${args[@]}"
  run "${job}_1x$CORES" 1 "$CORES" "${args[@]}" "${export_flag[@]}"
  run "${job}_2x$HALF" 2 "$HALF" "${args[@]}"
done

# PyTorch on the lm run's export: the same model, windows and schedule.
torch_run() {  # torch_run PROCESSES THREADS
  echo "== PyTorch lm: $1 process(es) x $2 thread(s)" >&2
  /usr/bin/python3 bench/lm_torch.py "$WORK/lm.h5" --steps "$STEPS" --ranks "$1" --threads "$2" \
    >"$WORK/torch_$1x$2.json" 2>"$WORK/torch_$1x$2.log" || {
    echo "run_ranks.sh: PyTorch with $1 x $2 failed; the end of its log:" >&2
    tail -20 "$WORK/torch_$1x$2.log" >&2
    exit 1
  }
  tail -1 "$WORK/torch_$1x$2.json" >&2
}
torch_run 1 1
torch_run 1 "$CORES"
torch_run 2 "$HALF"

/usr/bin/python3 - "$WORK" "$(bench_machine "$(uname -m)")" "$(bench_date)" "$STEPS" "$CORES" "$HALF" \
  "$(bench_command_line "bench/run_ranks.sh $*" STEPS)" >"$WORK/section.md" <<'EOF'
import json, re, subprocess, sys
from pathlib import Path

work, machine, date, steps, cores, half, command = sys.argv[1:8]
work = Path(work)

def read(name):
    text = (work / f"{name}.log").read_text()
    speed = re.search(r"in ([\d.]+) s = (\d+) (?:target )?tokens/s", text)
    if not speed:
        sys.exit(f"run_ranks.sh: no throughput in {name}.log")
    comm = re.search(r"([\d.]+) buckets and ([\d.]+) MB per step; ([\d.]+) ms per step communicating .*? waited "
                     r"([\d.]+) ms for them at the end of backward: ([\d.]+)% of the step time", text)
    return float(speed.group(2)), float(speed.group(1)), comm

def read_torch(processes, threads):
    summary = json.loads((work / f"torch_{processes}x{threads}.json").read_text().strip().splitlines()[-1])
    return summary["tokens_per_s"], summary["train_seconds"], summary["torch"]

commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = []
for job, unit in (("translate", "target tokens/s"), ("lm", "tokens/s")):
    base, _, _ = read(f"{job}_1x{cores}")
    for processes, threads in ((1, 1), (1, int(cores)), (2, int(half))):
        speed, seconds, comm = read(f"{job}_{processes}x{threads}")
        step_ms = 1000 * seconds / int(steps)
        if comm:
            buckets, mb, comm_ms, wait_ms, share = comm.groups()
            reduce = f"{mb} MB in {buckets} buckets; {comm_ms} ms communicating, {wait_ms} ms waited ({share}%)"
        else:
            reduce = "none (one process)"
        rows.append(f"| `{job}` | heed | {processes} x {threads} | {speed:.0f} {unit} | {speed / base:.2f}x | {step_ms:.0f} ms | {reduce} |")
torch_base, _, version = read_torch(1, int(cores))
for processes, threads in ((1, 1), (1, int(cores)), (2, int(half))):
    speed, seconds, _ = read_torch(processes, threads)
    reduce = "DistributedDataParallel, gloo, 25 MB buckets" if processes > 1 else "none (one process)"
    rows.append(f"| `lm` | PyTorch {version} | {processes} x {threads} | {speed:.0f} tokens/s | {speed / torch_base:.2f}x | "
                f"{1000 * seconds / int(steps):.0f} ms | {reduce} |")
table = "\n".join(rows)
print(f"""<!-- ranks:begin -->
## Data-parallel training on one machine: 1 and 2 processes (CPU)

- CPU: {machine}; date: {date}; heed at {commit}, Release build, OpenMPI (Debian) over shared memory
- `translate train` and `lm train` at their defaults (translate: 4096-token batches, dropout 0.2; lm: BPE,
  16 x 128 tokens per batch), the first {steps} steps of the full schedule; throughput of the training steps alone
  (the programs' own count, over the global batch); with 2 processes the batch is split between them and the
  gradients summed by `DistributedDataParallel` (4 MB buckets)
- PyTorch: `bench/lm_torch.py` on the lm run's export (the same model, windows and schedule; with 2
  processes each takes its rows of every batch and `torch.nn.parallel.DistributedDataParallel` averages)
- processes x threads: the total matches the machine's {cores} cores, except the 1 x 1 row; speed is over
  the same framework's 1 x {cores}; "communicating" is the time the bucket all-reduces took per step (overlapped with backward or not,
  waiting for the other rank included), "waited" how long the step waited for them at the end of backward
- Command: `{command}`

| job | framework | processes x threads | throughput | speed | time per step | gradient all-reduce per step |
|---|---|---|---:|---:|---:|---|
{table}
<!-- ranks:end -->""")
EOF
cat "$WORK/section.md"
if [[ $WRITE_RESULTS == 1 ]]; then
  bench_write_section ranks "$WORK/section.md" bench/RESULTS.md
  echo "wrote bench/RESULTS.md" >&2
fi
