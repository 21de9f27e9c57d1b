#!/usr/bin/env bash
# heed's translate and lm programs side by side with PyTorch: the same model,
# data, tokenisation, batches, hyper-parameters and number of steps, one run
# after the other (never at the same time). heed runs on THREADS threads;
# PyTorch on its faster setting of 1..THREADS threads, picked by a short probe
# of each (Debian's PyTorch 1.13 runs these models faster on 1 thread than on
# 2 here, and a comparison at its slower setting would flatter heed). Writes a
# table between the side-by-side markers of bench/RESULTS.md (see docs/benchmarks.md).
#
#   bench/run_side_by_side.sh [BUILD_DIR] [--smoke] [--no-results]
#
# BUILD_DIR (default build/) must hold a Release build of examples/translate
# and examples/lm; nothing is built here. By default heed runs both programs
# exactly as a user does, with their defaults (a 600 s time budget each), and
# PyTorch then trains the steps heed's budget fitted (about 75 minutes in all on
# 2 cores). --smoke: tiny models and 50 steps, for checking the pipeline
# (RESULTS.md is then left alone). Environment:
#   TRANSLATE_STEPS, LM_STEPS (fixed --steps instead of the budget), TRANSLATE_MODEL and LM_MODEL
#   (more flags for heed, e.g. "--warmup 100"), TORCH_INIT (torch: PyTorch's own initial weights, the
#   default; heed: heed's, from the export), THREADS (default 2), TORCH_THREADS (PyTorch's thread
#   count; default: the faster of 1..THREADS over PROBE_STEPS steps, default 40),
#   WORK (default /tmp/heed_side_by_side), KJV (default data/cache/kjv.txt),
#   NOTE (a line written under the table, e.g. about other load on the machine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=results_lib.sh
source "$here/results_lib.sh"
cd "$(dirname "$0")/.."

BUILD=build
SMOKE=0
WRITE_RESULTS=1
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --no-results) WRITE_RESULTS=0 ;;
    -h|--help) sed -n 2,23p "$0"; exit 0 ;;
    *) BUILD=$arg ;;
  esac
done
PY=/usr/bin/python3
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/heed_side_by_side}
KJV=${KJV:-data/cache/kjv.txt}
TRANSLATE=$BUILD/examples/translate
LM=$BUILD/examples/lm
for program in "$TRANSLATE" "$LM"; do
  [[ -x $program ]] || { echo "run_side_by_side.sh: $program is missing: build heed first (Release)" >&2; exit 1; }
done
[[ -f $KJV ]] || { echo "run_side_by_side.sh: $KJV is missing: run tools/prepare_data.sh" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "run_side_by_side.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"
export HEED_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

if [[ $SMOKE == 1 ]]; then
  TR_LENGTH=(--steps "${TRANSLATE_STEPS:-50}")
  LM_LENGTH=(--steps "${LM_STEPS:-50}")
  TR_MODEL=(--d-model 32 --heads 2 --encoder-layers 1 --decoder-layers 1 --ff 64 --warmup 10 --eval-every 50 --save-every 50)
  LM_MODEL=(--d-model 32 --heads 2 --layers 1 --warmup 10 --eval-every 50 --save-every 50 --sample-len 0)
  WRITE_RESULTS=0
else
  # The main jobs as the README runs them: heed's defaults, the time budget
  # fitting each run's length to this machine (unless a step count is given).
  TR_LENGTH=() LM_LENGTH=()
  [[ -n ${TRANSLATE_STEPS:-} ]] && TR_LENGTH=(--steps "$TRANSLATE_STEPS")
  [[ -n ${LM_STEPS:-} ]] && LM_LENGTH=(--steps "$LM_STEPS")
  read -r -a TR_MODEL <<<"${TRANSLATE_MODEL:-}"
  read -r -a LM_MODEL <<<"${LM_MODEL:-}"
fi

# The export is written after training, with the batches of the whole schedule.
# --whole-sentences: heed's greedy translations made as translate_torch.py
# makes PyTorch's (one source, one decoding), so BLEU compares the models.
TR_ARGS=(train "${TR_MODEL[@]}" "${TR_LENGTH[@]}" --show 0 --threads "$THREADS" --out "$WORK/translate_heed"
         --whole-sentences --export-data "$WORK/translate.h5" --hyp-out "$WORK/translate_heed.hyp")
LM_ARGS=(train "${LM_MODEL[@]}" "${LM_LENGTH[@]}" --text "$KJV" --threads "$THREADS" --out "$WORK/lm_heed"
         --export-data "$WORK/lm.h5")

run() {  # run NAME command...: stdout+stderr to $WORK/NAME.log, peak RSS (KB) and wall seconds to $WORK/NAME.time
  local name=$1
  shift
  echo "== $name: $*" >&2
  /usr/bin/time -f "%M %e" -o "$WORK/$name.time" "$@" >"$WORK/$name.log" 2>&1 || {
    echo "run_side_by_side.sh: $name failed; the end of $WORK/$name.log:" >&2
    tail -20 "$WORK/$name.log" >&2
    exit 1
  }
  tail -3 "$WORK/$name.log" >&2
}

# PyTorch's thread count for one program: TORCH_THREADS, or the fastest of
# 1..THREADS over the first PROBE_STEPS steps of its export (training alone).
PROBE_STEPS=${PROBE_STEPS:-$([[ $SMOKE == 1 ]] && echo 10 || echo 40)}
torch_threads() {  # torch_threads NAME SCRIPT EXPORT: prints the count; probe figures in $WORK/NAME_probe.txt
  local name=$1 script=$2 export=$3 n best="" best_speed=0 speed
  if [[ -n ${TORCH_THREADS:-} ]]; then
    echo "$TORCH_THREADS (TORCH_THREADS)" >"$WORK/${name}_probe.txt"
    echo "$TORCH_THREADS"
    return
  fi
  : >"$WORK/${name}_probe.txt"
  for ((n = 1; n <= THREADS; n++)); do
    run "${name}_probe$n" $PY "$script" "$export" --threads "$n" --steps "$PROBE_STEPS" --train-only
    speed=$($PY -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["tokens_per_s"]))' \
      "$WORK/${name}_probe$n.log")
    echo "$n $speed" >>"$WORK/${name}_probe.txt"
    if ((speed > best_speed)); then best=$n best_speed=$speed; fi
  done
  echo "$best"
}

run translate_heed "$TRANSLATE" "${TR_ARGS[@]}"
TR_TORCH_THREADS=$(torch_threads translate bench/translate_torch.py "$WORK/translate.h5")
TR_TORCH_THREADS=${TR_TORCH_THREADS%% *}
run translate_torch $PY bench/translate_torch.py "$WORK/translate.h5" --threads "$TR_TORCH_THREADS" --init "${TORCH_INIT:-torch}" \
  --hyp-out "$WORK/translate_torch.hyp" --ref-out "$WORK/translate_ref.txt"
"$TRANSLATE" bleu --hyp "$WORK/translate_heed.hyp" --ref "$WORK/translate_ref.txt" >"$WORK/bleu_heed.txt"
"$TRANSLATE" bleu --hyp "$WORK/translate_torch.hyp" --ref "$WORK/translate_ref.txt" >"$WORK/bleu_torch.txt"
run lm_heed "$LM" "${LM_ARGS[@]}"
LM_TORCH_THREADS=$(torch_threads lm bench/lm_torch.py "$WORK/lm.h5")
LM_TORCH_THREADS=${LM_TORCH_THREADS%% *}
run lm_torch $PY bench/lm_torch.py "$WORK/lm.h5" --threads "$LM_TORCH_THREADS" --init "${TORCH_INIT:-torch}"

# Collect the figures and (unless --smoke / --no-results) write the table.
$PY - "$WORK" "$(bench_machine "$(uname -m)")" "$(bench_date)" "${NOTE:-}" "$THREADS" \
  "$(basename "$TRANSLATE") ${TR_ARGS[*]}" "$(basename "$LM") ${LM_ARGS[*]}" "$PROBE_STEPS" >"$WORK/section.md" <<'EOF'
import json, re, subprocess, sys
from pathlib import Path

work, machine, date, note, threads, tr_cmd, lm_cmd, probe_steps = Path(sys.argv[1]), *sys.argv[2:9]

def probe_line(name):
    """How PyTorch's thread count was chosen, from torch_threads' file."""
    lines = (work / f"{name}_probe.txt").read_text().split("\n")
    if "TORCH_THREADS" in lines[0]:
        return "set by TORCH_THREADS"
    speeds = [line.split() for line in lines if line.strip()]
    return f"the faster over its first {probe_steps} steps: " + ", ".join(
        f"{n} thread{'s' if n != '1' else ''} {s}" for n, s in speeds) + " tokens/s"

def grab(text, pattern, what):
    found = re.findall(pattern, text)
    if not found:
        sys.exit(f"run_side_by_side.sh: no {what} in the output")
    return float(found[-1])

def time_of(name):
    rss_kb, wall = (work / f"{name}.time").read_text().split()[-2:]
    return float(rss_kb) / 1024, float(wall)

def heed(name, tokens_word):
    log = (work / f"{name}.log").read_text()
    rss, wall = time_of(name)
    r = dict(tokens_per_s=grab(log, rf"= (\d+) {tokens_word}/s", "throughput"),
             train_seconds=grab(log, r"tokens in ([\d.]+) s", "training time"), peak_rss_mb=rss, wall_s=wall,
             first_loss=grab(log, r"first-step loss ([\d.]+)", "first-step loss"))
    r["valid_loss"] = grab(log, r"validation loss ([\d.]+) nats/token", "validation loss")
    r["steps"] = int(grab(log, r"training steps alone: (\d+) steps", "step count"))
    return r

def torch_side(name):
    r = json.loads((work / f"{name}.log").read_text().strip().splitlines()[-1])
    r["peak_rss_mb"], r["wall_s"] = time_of(name)
    return r

tr_h, tr_t = heed("translate_heed", "target tokens"), torch_side("translate_torch")
tr_h["bleu"] = grab((work / "bleu_heed.txt").read_text(), r"BLEU ([\d.]+)", "BLEU")
beam = re.search(r"BLEU beam (\d+) +([\d.]+)", (work / "translate_heed.log").read_text())
tr_t["bleu"] = grab((work / "bleu_torch.txt").read_text(), r"BLEU ([\d.]+)", "BLEU")
lm_h, lm_t = heed("lm_heed", "tokens"), torch_side("lm_torch")
tr_log = (work / "translate_heed.log").read_text()
tok = re.search(r"(\w+) tokenizers: source vocabulary (\d+), target vocabulary (\d+)", tr_log)
shape = re.search(r"Seq2SeqTransformer: \d+ parameters, (.*)", tr_log)
tr_desc = f"{tok.group(1).upper()} {tok.group(2)}/{tok.group(3)}, {shape.group(1)}" if tok and shape else "see the command"
lm_log = (work / "lm_heed.log").read_text()
lm_tok = re.search(r"(\w+) tokenizer with (\d+) tokens", lm_log)
lm_desc = (f"{lm_tok.group(1).upper()} {lm_tok.group(2)}" if lm_tok.group(1) != "char" else "characters") if lm_tok else "see the command"
# bits/char: the whole validation split's loss in heed's final report, and its tokens per character applied to PyTorch's.
final = re.search(r"validation loss ([\d.]+) nats/token = [\d.]+ bits/token = ([\d.]+) bits/char", lm_log)
if final:
    per_nat = float(final.group(2)) / float(final.group(1))
    lm_h["bits_per_char"], lm_t["bits_per_char"] = float(final.group(2)), lm_t["valid_loss"] * per_nat

def rows(h, t, with_bleu, tokens):
    out = [("training steps", f"{h['steps']}", f"{t['steps']}", "")]
    out += [("validation loss (nats/token)", f"{h['valid_loss']:.3f}", f"{t['valid_loss']:.3f}",
            f"{h['valid_loss'] - t['valid_loss']:+.3f} (difference)")]
    if "bits_per_char" in h:
        out.append(("validation bits/char", f"{h['bits_per_char']:.3f}", f"{t['bits_per_char']:.3f}",
                    f"{h['bits_per_char'] - t['bits_per_char']:+.3f} (difference)"))
    out.append(("first-step training loss", f"{h['first_loss']:.4f}", f"{t['first_loss']:.4f}",
                f"{h['first_loss'] - t['first_loss']:+.4f} (difference)"))
    if with_bleu:
        out.append(("test BLEU, greedy", f"{h['bleu']:.2f}", f"{t['bleu']:.2f}", f"{h['bleu'] - t['bleu']:+.2f} (difference)"))
        if beam:
            out.append((f"test BLEU, beam {beam.group(1)}", beam.group(2), "-", "(heed only)"))
    out += [(f"training {tokens}/s", f"{h['tokens_per_s']:.0f}", f"{t['tokens_per_s']:.0f}", f"{h['tokens_per_s'] / t['tokens_per_s']:.2f}x"),
            ("training time (s)", f"{h['train_seconds']:.1f}", f"{t['train_seconds']:.1f}", f"{h['train_seconds'] / t['train_seconds']:.2f}x"),
            ("peak RSS of the process (MB)", f"{h['peak_rss_mb']:.0f}", f"{t['peak_rss_mb']:.0f}", f"{h['peak_rss_mb'] / t['peak_rss_mb']:.2f}x"),
            ("wall time of the process (s)", f"{h['wall_s']:.0f}", f"{t['wall_s']:.0f}", f"{h['wall_s'] / t['wall_s']:.2f}x")]
    return "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in out)

torch_version = tr_t.get("torch", "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
note_block = f"\n{note}\n" if note else ""
header = "| | heed | PyTorch | heed vs PyTorch |\n|---|---:|---:|---:|"
table = f"""<!-- side-by-side:begin -->
## Training programs side by side with PyTorch (translate, lm)

- CPU: {machine}; heed: {threads} threads; PyTorch {torch_version} (Debian python3-torch): {tr_t['threads']} thread(s)
  for translate ({probe_line("translate")}), {lm_t['threads']} for lm ({probe_line("lm")})
- Date: {date}; heed at {commit}, Release build
- Command: `bench/run_side_by_side.sh` (docs/benchmarks.md); the two sides run one after the other, on the same
  exported data and batches (same splits, tokenizers, batch order, hyper-parameters and steps; each side its own
  initial weights, unless PyTorch was given heed's (`--init heed`), and its own dropout masks)
- Training throughput counts the training steps alone (batch making, forward, backward, clipping, optimizer),
  not evaluation, decoding or data preparation. Peak RSS and wall time are the whole process's (`/usr/bin/time`):
  heed's includes tokenizer training and writing the export; PyTorch's includes importing torch and reading it.
- Validation loss: per-token cross-entropy without label smoothing over the whole validation split, eval mode.
  BLEU: both sides' greedy test translations scored by heed's `data::corpus_bleu` (`translate bleu`).

**translate** (Ding de-en, {tr_desc}, {tr_t['parameters']} parameters, {tr_t['test_sentences']} test sentences):

{header}
{rows(tr_h, tr_t, True, "target tokens")}

**lm** (KJV, {lm_desc}, {lm_t['parameters']} parameters):

{header}
{rows(lm_h, lm_t, False, "tokens")}

Commands (`bench/run_side_by_side.sh`):

    {tr_cmd}
    /usr/bin/python3 bench/translate_torch.py translate.h5 --threads {tr_t['threads']} --init {tr_t['init']} --hyp-out translate_torch.hyp --ref-out translate_ref.txt
    translate bleu --hyp translate_heed.hyp --ref translate_ref.txt   (and the same for translate_torch.hyp)
    {lm_cmd}
    /usr/bin/python3 bench/lm_torch.py lm.h5 --threads {lm_t['threads']} --init {lm_t['init']}
{note_block}<!-- side-by-side:end -->"""
print(table)
EOF
cat "$WORK/section.md"
if [[ $WRITE_RESULTS == 1 ]]; then
  bench_write_section side-by-side "$WORK/section.md" bench/RESULTS.md
  echo "wrote bench/RESULTS.md" >&2
fi
