#!/usr/bin/env bash
# End-to-end checks of the programs in examples/ on small synthetic data:
# translate (train, resume, decode), lm (train, sample), attention (both kinds
# of checkpoint), and their errors for bad flags and missing files.
#   run_programs.sh BIN_DIR WORK_DIR
set -uo pipefail
BIN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK"
export HEED_NUM_THREADS=${HEED_NUM_THREADS:-2}
failures=0

check() {  # check NAME EXPECTED_STATUS PATTERN -- command...
  local name=$1 want=$2 pattern=$3
  shift 4
  local out status
  out=$("$@" 2>&1)
  status=$?
  if [[ $want == 0 && $status != 0 ]] || [[ $want != 0 && $status == 0 ]]; then
    echo "FAIL $name: exit status $status (wanted $( [[ $want == 0 ]] && echo 0 || echo 'non-zero'))"
    echo "$out" | tail -20
    failures=$((failures + 1))
  elif [[ -n $pattern ]] && ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: output lacks /$pattern/"
    echo "$out" | tail -20
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}
exists() {  # exists NAME FILE...
  local name=$1
  shift
  for f in "$@"; do
    if [[ ! -s $f ]]; then
      echo "FAIL $name: $f is missing or empty"
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok   $name"
}

# A check that needs a tool this machine lacks (a bare GPU machine has no
# hdf5-tools) is reported as skipped, naming the tool, not failed.
needs() {  # needs NAME TOOL...: true when every TOOL is on PATH, else prints a skip line
  local name=$1 tool
  shift
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "skip $name: $tool is not installed (Debian's hdf5-tools has it)"
      return 1
    fi
  done
}

T="$BIN/translate"
TINY=(--tokenizer word --d-model 32 --heads 2 --lr 3e-3 --encoder-layers 1 --decoder-layers 1 --ff 64 --max-tokens 1024
      --warmup 10 --beam 2 --show 2)
check "translate --help" 0 "train" -- "$T" --help
check "translate train --help lists the flags" 0 "--label-smoothing" -- "$T" train --help
check "translate train on the copy task" 0 "BLEU greedy" -- "$T" train --task copy "${TINY[@]}" --steps 200 --eval-every 100 --save-every 100 --out "$WORK/tr"
exists "translate writes checkpoints, the log and the plot" "$WORK/tr/best.h5" "$WORK/tr/last.h5" "$WORK/tr/log.csv" "$WORK/tr/loss.svg"
check "the log has a header and rows" 0 "^step,epoch,train_loss" -- head -1 "$WORK/tr/log.csv"
check "translate train --resume continues a finished run" 0 "resuming" -- "$T" train --resume "$WORK/tr/last.h5" --out "$WORK/tr2" --beam 1 --show 1
# Exact resume: 40 steps in one go equal 20 steps, a checkpoint, and 20 more in a new process.
RESUME=(--task reverse "${TINY[@]}" --steps 40 --eval-every 10 --save-every 10 --dropout 0.2 --ema 0 --beam 1 --show 0)
check "translate: 40 steps in one run" 0 "BLEU" -- "$T" train "${RESUME[@]}" --out "$WORK/full"
check "translate: 20 steps, then stop" 0 "stopping at step 20" -- "$T" train "${RESUME[@]}" --stop-at 20 --out "$WORK/half"
check "translate: resume for the other 20" 0 "resuming" -- "$T" train --resume "$WORK/half/last.h5" --out "$WORK/half" --eval-every 10 --save-every 10 --beam 1 --show 0
check "the uninterrupted run logged 4 evaluations" 0 "^5 " -- wc -l "$WORK/full/log.csv"
check "resumed losses equal the uninterrupted run's" 0 "" -- bash -c \
  "diff <(cut -d, -f1,3,7-9 '$WORK/full/log.csv') <(cut -d, -f1,3,7-9 '$WORK/half/log.csv')"
needs "resumed parameters and optimizer state equal the uninterrupted run's, bit for bit" h5diff &&
  check "resumed parameters and optimizer state equal the uninterrupted run's, bit for bit" 0 "" -- bash -c \
    "h5diff -d 0 '$WORK/full/last.h5' '$WORK/half/last.h5' /model && h5diff -d 0 '$WORK/full/last.h5' '$WORK/half/last.h5' /optimizer"
# --ema: evaluation uses the averaged weights, the checkpoint keeps them apart
# from the weights, and a resumed run continues the average exactly.
check "translate --ema: 40 steps in one run" 0 "averaged weights \\(--ema 0.9\\)" -- "$T" train "${RESUME[@]}" --ema 0.9 --out "$WORK/ema_full"
check "translate --ema: 20 steps, then stop" 0 "stopping at step 20" -- "$T" train "${RESUME[@]}" --ema 0.9 --stop-at 20 --out "$WORK/ema_half"
check "translate --ema: resume for the other 20" 0 "averaged weights" -- "$T" train --resume "$WORK/ema_half/last.h5" \
  --out "$WORK/ema_half" --eval-every 10 --save-every 10 --beam 1 --show 0
check "--ema resumed validation (of the averages) equals the uninterrupted run's" 0 "" -- bash -c \
  "diff <(cut -d, -f1,3,7-9 '$WORK/ema_full/log.csv') <(cut -d, -f1,3,7-9 '$WORK/ema_half/log.csv')"
check "--ema validation differs from a run without it (the averages are what is evaluated)" 1 "" -- bash -c \
  "diff -q <(cut -d, -f7 '$WORK/ema_full/log.csv') <(cut -d, -f7 '$WORK/full/log.csv') > /dev/null"
needs "--ema resumed averages equal the uninterrupted run's, bit for bit" h5diff &&
  check "--ema resumed averages equal the uninterrupted run's, bit for bit" 0 "" -- bash -c \
    "h5diff -d 0 '$WORK/ema_full/last.h5' '$WORK/ema_half/last.h5' /averages && h5diff -d 0 '$WORK/ema_full/last.h5' '$WORK/ema_half/last.h5' /model"
check "translate decode reads an --ema checkpoint" 0 "" -- "$T" decode -c "$WORK/ema_full/best.h5" "a b c"
# resumes_exactly NAME DIR FLAGS...: 40 steps of the RESUME run with FLAGS in
# one go equal 20 steps, a checkpoint and 20 more in a new process: the same
# logged losses and, where h5diff is, the same parameters bit for bit.
resumes_exactly() {
  local name=$1 dir=$2
  shift 2
  check "translate $name: 40 steps in one run" 0 "BLEU" -- "$T" train "${RESUME[@]}" "$@" --out "$WORK/${dir}_full"
  check "translate $name: 20 steps, then stop" 0 "stopping at step 20" -- "$T" train "${RESUME[@]}" "$@" \
    --stop-at 20 --out "$WORK/${dir}_half"
  check "translate $name: resume for the other 20" 0 "resuming" -- "$T" train --resume "$WORK/${dir}_half/last.h5" \
    --out "$WORK/${dir}_half" --eval-every 10 --save-every 10 --beam 1 --show 0
  check "$name resumed losses equal the uninterrupted run's" 0 "" -- bash -c \
    "diff <(cut -d, -f1,3,7-9 '$WORK/${dir}_full/log.csv') <(cut -d, -f1,3,7-9 '$WORK/${dir}_half/log.csv')"
  needs "$name resumed parameters equal the uninterrupted run's, bit for bit" h5diff &&
    check "$name resumed parameters equal the uninterrupted run's, bit for bit" 0 "" -- bash -c \
      "h5diff -d 0 '$WORK/${dir}_full/last.h5' '$WORK/${dir}_half/last.h5' /model"
}
# --bpe-dropout: fresh segmentations every epoch, drawn from (seed, example,
# epoch), so an interrupted run resumes to the same losses and weights.
resumes_exactly --bpe-dropout bd --tokenizer bpe --vocab-size 300 --bpe-dropout 0.2
check "translate --bpe-dropout 0: the same BPE run without it trains on other batches" 0 "BLEU" -- "$T" train \
  "${RESUME[@]}" --tokenizer bpe --vocab-size 300 --out "$WORK/bd_none"
check "--bpe-dropout changes the training losses (the segmentations differ)" 1 "" -- bash -c \
  "diff -q <(cut -d, -f3 '$WORK/bd_full/log.csv') <(cut -d, -f3 '$WORK/bd_none/log.csv') > /dev/null"
check "translate: --bpe-dropout with a word tokenizer is refused" 1 "needs --tokenizer bpe" -- "$T" train --task copy \
  "${TINY[@]}" --bpe-dropout 0.1 --steps 5 --out "$WORK/x"
# Word dropout draws from the model's generator, which the checkpoint keeps:
# a resumed run drops the same words.
resumes_exactly --word-dropout wd --word-dropout 0.2 --target-word-dropout 0.2
check "--word-dropout changes the training losses" 1 "" -- bash -c \
  "diff -q <(cut -d, -f3 '$WORK/wd_full/log.csv') <(cut -d, -f3 '$WORK/full/log.csv') > /dev/null"
check "translate: --word-dropout with --export-data is refused, naming why" 1 "translate_torch.py has no word dropout" -- \
  "$T" train --task copy "${TINY[@]}" --word-dropout 0.1 --steps 5 --out "$WORK/x" --export-data "$WORK/x.h5"
check "translate: --word-dropout above 0.9 is refused" 1 "word-dropout" -- "$T" train --word-dropout 0.95
check "translate: --bpe-dropout above 0.9 is refused" 1 "bpe-dropout" -- "$T" train --bpe-dropout 0.95
check "translate: --ema 1 is refused" 1 "--ema" -- "$T" train --task copy "${TINY[@]}" --ema 1 --steps 5 --out "$WORK/x"
# A time budget: the warmup is timed, the run's length is fitted to the
# budget and kept in the checkpoint; a resumed budgeted run continues the same
# schedule, and --steps with the fitted count repeats the run bit for bit.
BUDGET=(--task reverse "${TINY[@]}" --eval-every 1000 --save-every 1000 --beam 1 --show 0)
check "translate --time-budget fits the run's length after the warmup, then stops as asked" 0 "fitted to [0-9]+ steps" -- \
  bash -c "'$T' train ${BUDGET[*]} --time-budget 3 --stop-at 30 --out '$WORK/budget' --export-data '$WORK/budget.export.h5' \
    2>&1 | tee '$WORK/budget.out'"
FITTED=$(grep -oE "fitted to [0-9]+ steps" "$WORK/budget.out" | grep -oE "[0-9]+" || echo 0)
check "the fitted length is more than the stop" 0 "^more" -- bash -c "(( $FITTED > 30 )) && echo more"
check "translate: a budgeted run resumes to its fitted length" 0 "resuming" -- "$T" train --resume "$WORK/budget/last.h5" \
  --out "$WORK/budget" --eval-every 1000 --save-every 1000 --beam 1 --show 0
# A budgeted run stops short of its fitted total when its steps ran slower
# than the fit measured and the budget is spent (a loaded machine): then
# --steps FITTED --stop-at DONE repeats it, and DONE == FITTED otherwise.
DONE=$(tail -1 "$WORK/budget/log.csv" | cut -d, -f1)
check "the resumed budgeted run ends at its fitted length, or where its budget was spent" 0 "^within" -- bash -c \
  "(( $DONE > 30 && $DONE <= $FITTED )) && echo within"
check "translate --steps with the fitted count" 0 "BLEU" -- "$T" train "${BUDGET[@]}" --steps "$FITTED" --stop-at "$DONE" \
  --out "$WORK/budget_steps" --export-data "$WORK/budget_steps.export.h5"
check "the budgeted run's final validation equals that of --steps with its fitted count" 0 "" -- bash -c \
  "diff <(tail -1 '$WORK/budget/log.csv' | cut -d, -f1,7-9) <(tail -1 '$WORK/budget_steps/log.csv' | cut -d, -f1,7-9)"
needs "the budgeted run's parameters equal those of --steps with its fitted count, bit for bit" h5diff &&
  check "the budgeted run's parameters equal those of --steps with its fitted count, bit for bit" 0 "" -- \
    h5diff -d 0 "$WORK/budget/last.h5" "$WORK/budget_steps/last.h5" /model
# The export is written after training: a budgeted run (stopped at step 30)
# exports the batches of its whole fitted schedule and its initial weights,
# the same as the full --steps run with the fitted count.
needs "a budgeted run's export equals that of --steps with its fitted count" h5diff &&
  check "a budgeted run's export equals that of --steps with its fitted count" 0 "" -- bash -c \
    "h5diff -d 0 '$WORK/budget.export.h5' '$WORK/budget_steps.export.h5' /train_batches &&
     h5diff -d 0 '$WORK/budget.export.h5' '$WORK/budget_steps.export.h5' /init"
check "translate: an export from a run stopped before its time budget's fit is refused" 1 "before its time budget fixed" -- \
  "$T" train "${BUDGET[@]}" --time-budget 3 --stop-at 5 --out "$WORK/x" --export-data "$WORK/x.h5"
check "translate: a negative --weight-decay is refused" 1 "weight-decay" -- \
  "$T" train --task copy "${TINY[@]}" --weight-decay -1 --steps 2 --out "$WORK/x"
check "translate: --steps and --time-budget together are refused" 1 "give --steps or --time-budget, not both" -- \
  "$T" train --task copy "${TINY[@]}" --steps 5 --time-budget 3 --out "$WORK/x"
check "translate: a time budget needs warmup steps to time" 1 "needs --warmup of at least 10" -- \
  "$T" train --task copy "${TINY[@]}" --time-budget 3 --warmup 4 --out "$WORK/x"
# Mixed precision: kept in the checkpoint and honoured on resume, exactly.
check "translate --precision bf16: 40 steps in one run" 0 "precision bf16" -- "$T" train "${RESUME[@]}" \
  --precision bf16 --out "$WORK/bf16_full"
check "translate --precision bf16: 20 steps, then stop" 0 "stopping at step 20" -- "$T" train "${RESUME[@]}" \
  --precision bf16 --stop-at 20 --out "$WORK/bf16_half"
check "translate: the resumed run is bf16 again (from the checkpoint)" 0 "precision bf16" -- "$T" train \
  --resume "$WORK/bf16_half/last.h5" --out "$WORK/bf16_half" --eval-every 10 --save-every 10 --beam 1 --show 0
check "bf16 resumed losses equal the uninterrupted bf16 run's" 0 "" -- bash -c \
  "diff <(cut -d, -f1,3,7-9 '$WORK/bf16_full/log.csv') <(cut -d, -f1,3,7-9 '$WORK/bf16_half/log.csv')"
needs "bf16 resumed parameters equal the uninterrupted run's, bit for bit" h5diff &&
  check "bf16 resumed parameters equal the uninterrupted run's, bit for bit" 0 "" -- bash -c \
    "h5diff -d 0 '$WORK/bf16_full/last.h5' '$WORK/bf16_half/last.h5' /model"
check "bf16 training learns like fp32 (final validation loss within 0.3 nats)" 0 "^close" -- bash -c \
  "paste -d, <(tail -1 '$WORK/full/log.csv' | cut -d, -f7) <(tail -1 '$WORK/bf16_full/log.csv' | cut -d, -f7) | \
   awk -F, '{ d = \$1 - \$2; if (d < 0) d = -d; print (d < 0.3 ? \"close\" : \"far\"), \$1, \$2 }'"
check "translate: --precision tf32 on the CPU is refused" 1 "--precision tf32: TF32 is a mode of the GPU" -- "$T" train \
  --task copy "${TINY[@]}" --steps 2 --precision tf32 --out "$WORK/tf32"
# bf16 inputs to the CPU's float32 matmuls: kept in the checkpoint, so a resumed
# run rounds as the uninterrupted one did (its losses equal those, and differ
# from fp32's).
resumes_exactly "--precision bf16-matmul" bfm --precision bf16-matmul
check "--precision bf16-matmul changes the training losses (the matmul inputs are rounded)" 1 "" -- bash -c \
  "diff -q <(cut -d, -f3 '$WORK/bfm_full/log.csv') <(cut -d, -f3 '$WORK/full/log.csv') > /dev/null"
check "bf16-matmul training learns like fp32 (final validation loss within 0.3 nats)" 0 "^close" -- bash -c \
  "paste -d, <(tail -1 '$WORK/full/log.csv' | cut -d, -f7) <(tail -1 '$WORK/bfm_full/log.csv' | cut -d, -f7) | \
   awk -F, '{ d = \$1 - \$2; if (d < 0) d = -d; print (d < 0.3 ? \"close\" : \"far\"), \$1, \$2 }'"
check "translate: an unknown --precision is refused" 1 "precision" -- "$T" train --precision fp16

check "translate test reports a checkpoint's test BLEU as train did" 0 "" -- bash -c \
  "'$T' train ${RESUME[*]} --beam 2 --out '$WORK/test_cmd' 2>/dev/null | grep 'BLEU' > '$WORK/test_cmd.train' &&
   '$T' test -c '$WORK/test_cmd/best.h5' --beam 2 --show 0 2>/dev/null | grep 'BLEU' > '$WORK/test_cmd.test' &&
   [[ -s '$WORK/test_cmd.test' ]] && diff '$WORK/test_cmd.train' '$WORK/test_cmd.test'"
check "translate test with another beam" 0 "BLEU beam 3" -- "$T" test -c "$WORK/tr/best.h5" --beam 3 --length-penalty 0.6 --show 1
check "translate test --split valid scores the validation split" 0 "^validation set \\([0-9]+ sentences\\)" -- "$T" test \
  -c "$WORK/tr/best.h5" --split valid --beam 2 --show 1
check "translate test: an unknown --split is refused" 1 "split" -- "$T" test -c "$WORK/tr/best.h5" --split train
check "translate decode" 0 "^[a-z]" -- "$T" decode -c "$WORK/tr/best.h5" "a b c d" "e f g"
check "translate test --ensemble decodes with two checkpoints of one split" 0 "in an ensemble with .*tr2/last.h5" -- "$T" test \
  -c "$WORK/tr/best.h5" --ensemble "$WORK/tr2/last.h5" --beam 2 --show 1
check "translate decode --ensemble, repeated and comma-separated" 0 "^[a-z]" -- "$T" decode -c "$WORK/tr/best.h5" \
  --ensemble "$WORK/tr2/last.h5,$WORK/tr/last.h5" --ensemble "$WORK/tr/best.h5" "a b c d" "e f g"
check "translate test --ensemble of another data split is refused" 1 "test split would differ" -- "$T" test \
  -c "$WORK/tr/best.h5" --ensemble "$WORK/full/best.h5"
check "translate train --seed 2 --split-seed 1: other weights on the first run's split" 0 "BLEU" -- "$T" train --task copy \
  "${TINY[@]}" --steps 20 --eval-every 100 --save-every 100 --seed 2 --split-seed 1 --out "$WORK/tr_seed2"
check "translate test --ensemble of runs that differ in --seed but share --split-seed" 0 "in an ensemble with" -- \
  "$T" test -c "$WORK/tr/best.h5" --ensemble "$WORK/tr_seed2/best.h5" --beam 2 --show 0
check "translate test --ensemble of another --seed without --split-seed is refused" 1 "split seed is '2'" -- bash -c \
  "'$T' train --task copy ${TINY[*]} --steps 20 --eval-every 100 --save-every 100 --seed 2 --out '$WORK/tr_seed2b' >/dev/null &&
   '$T' test -c '$WORK/tr/best.h5' --ensemble '$WORK/tr_seed2b/best.h5'"
check "translate decode --ensemble: a missing checkpoint is named" 1 "nope.h5" -- "$T" decode -c "$WORK/tr/best.h5" \
  --ensemble "$WORK/nope.h5" "a"
check "translate decode --beam 3 from a file" 0 "^[a-z]" -- bash -c "printf 'a b c\nd e f\n' > '$WORK/in.txt' && '$T' decode -c '$WORK/tr/best.h5' --beam 3 --file '$WORK/in.txt'"
check "translate decode --file - reads standard input, as the file would" 0 "" -- bash -c \
  "'$T' decode -c '$WORK/tr/best.h5' --beam 3 --file '$WORK/in.txt' > '$WORK/in.file.out' &&
   '$T' decode -c '$WORK/tr/best.h5' --beam 3 --file - < '$WORK/in.txt' > '$WORK/in.stdin.out' &&
   [[ -s '$WORK/in.stdin.out' ]] && diff '$WORK/in.file.out' '$WORK/in.stdin.out'"
check "translate decode --file: a missing file is named" 1 "nope.txt" -- "$T" decode -c "$WORK/tr/best.h5" --file "$WORK/nope.txt"
check "translate: a bad flag value is refused" 1 "d-model" -- "$T" train --d-model -4
check "translate: an unknown flag is refused" 1 "bogus" -- "$T" train --bogus
check "translate: a missing corpus is named" 1 "no such file" -- "$T" train --data "$WORK/nope.tsv" --steps 1 --out "$WORK/x"
# The Ding format with its word entries: --dictionary-phrases adds them to the training pairs, but
# not those of the 7 lines whose sentence went to the validation or test split.
for i in $(seq 1 80); do
  echo "Wort$i {n} | Der Hund $i läuft heute schnell. :: word$i | The dog $i runs fast today."
done > "$WORK/ding.txt"
check "translate --dictionary-phrases trains on the Ding file's words too" 0 \
  "dictionary words and phrases: 73 more training pairs" -- "$T" train --data "$WORK/ding.txt" --dictionary-phrases -1 \
  "${TINY[@]}" --steps 12 --eval-every 12 --save-every 12 --out "$WORK/dict"
check "translate --dictionary-phrases 20 trains on a seeded sample of 20 of them" 0 \
  "dictionary words and phrases: 20 more training pairs" -- "$T" train --data "$WORK/ding.txt" --dictionary-phrases 20 \
  "${TINY[@]}" --steps 12 --eval-every 12 --save-every 12 --out "$WORK/dict20"
check "translate: --dictionary-phrases below -1 is refused" 1 "dictionary-phrases" -- "$T" train --dictionary-phrases -2
check "translate: --dictionary-phrases with a .tsv is refused" 1 "needs --data to be the Ding file" -- bash -c \
  "printf 'a b\tc d\n%.0s' \$(seq 1 40) > '$WORK/small.tsv' && '$T' train --data '$WORK/small.tsv' --dictionary-phrases 5 \
   ${TINY[*]} --steps 2 --out '$WORK/x'"
# Sides that join two sentences with "; ": trained on apart (the default) or whole, translated part by part.
for i in $(seq 1 60); do
  if ((i % 2)); then
    echo "Der Hund $i läuft heute schnell.; Der Hund $i rennt heute schnell. :: The dog $i runs fast today.; The dog $i is running fast today."
  else
    echo "Die Katze $i schläft jetzt hier. :: The cat $i sleeps here now."
  fi
done > "$WORK/joined.txt"
check "translate train --train-joined-apart: joined sentences become training pairs of their own" 0 \
  "joined sentences apart: [0-9]+ training pairs \(were [0-9]+\)" -- "$T" train --data "$WORK/joined.txt" "${TINY[@]}" \
  --train-joined-apart --steps 12 --eval-every 12 --save-every 12 --out "$WORK/joined_apart"
check "translate train keeps joined training pairs whole by default" 0 "" -- bash -c \
  "'$T' train --data '$WORK/joined.txt' ${TINY[*]} --steps 12 --eval-every 12 --save-every 12 \
   --out '$WORK/joined' > '$WORK/joined.log' && grep -q 'test set' '$WORK/joined.log' &&
   ! grep -q 'joined sentences apart' '$WORK/joined.log'"
check "translate decode translates the sentences of a joined source one by one" 0 "^[^;]*; [^;]*$" -- "$T" decode \
  -c "$WORK/joined/best.h5" --beam 1 "Der Hund 3 läuft heute schnell.; Die Katze 4 schläft jetzt hier."
check "translate train --whole-sentences" 0 "test set" -- "$T" train --data "$WORK/joined.txt" "${TINY[@]}" \
  --steps 12 --eval-every 12 --save-every 12 --whole-sentences --out "$WORK/joined_whole"
needs "the checkpoint keeps --whole-sentences, so test and decode translate as train did" h5dump &&
  check "the checkpoint keeps --whole-sentences, so test and decode translate as train did" 0 "" -- bash -c \
  "h5dump -a /config/split_joined '$WORK/joined_whole/best.h5' | grep -q '\"0\"' &&
   h5dump -a /config/split_joined '$WORK/joined/best.h5' | grep -q '\"1\"'"
check "translate decode --split-joined overrides a --whole-sentences checkpoint" 0 "^[^;]*; [^;]*$" -- "$T" decode \
  -c "$WORK/joined_whole/best.h5" --split-joined --beam 2 "Der Hund 3 läuft heute schnell.; Die Katze 4 schläft jetzt hier."
check "translate test: --split-joined with --whole-sentences is refused" 1 "excludes" -- "$T" test \
  -c "$WORK/joined/best.h5" --split-joined --whole-sentences
check "translate decode: a missing checkpoint is named" 1 "nope.h5" -- "$T" decode -c "$WORK/nope.h5" "a"
check "translate decode: a corrupt checkpoint is an error" 1 "error" -- bash -c "head -c 3000 '$WORK/tr/best.h5' > '$WORK/cut.h5' && '$T' decode -c '$WORK/cut.h5' a"

# The side-by-side benchmark's hooks (bench/run_side_by_side.sh): the export, the translations and the BLEU scorer.
check "translate train --export-data --hyp-out, with its training-only throughput" 0 "training steps alone: 30 steps" -- "$T" train --task copy "${TINY[@]}" \
  --steps 30 --eval-every 30 --out "$WORK/tr_export" --export-data "$WORK/tr_export.h5" --hyp-out "$WORK/tr.hyp"
exists "translate writes the export and the translations" "$WORK/tr_export.h5" "$WORK/tr.hyp"
check "translate bleu of a file against itself is 100" 0 "^BLEU 100.00" -- bash -c "printf 'the cat sat on the mat .\nwe went home late\n' > '$WORK/ref.txt' && '$T' bleu --hyp '$WORK/ref.txt' --ref '$WORK/ref.txt'"
check "translate bleu of heed's translations" 0 "^BLEU [0-9]" -- bash -c "'$T' decode -c '$WORK/tr_export/best.h5' --beam 1 --file '$WORK/in.txt' > '$WORK/in.hyp' && '$T' bleu --hyp '$WORK/in.hyp' --ref '$WORK/in.txt'"
check "translate bleu: files of different lengths are refused" 1 "has 2 lines but" -- bash -c "printf 'a\n' > '$WORK/one.txt' && '$T' bleu --hyp '$WORK/ref.txt' --ref '$WORK/one.txt'"
check "translate: --export-data with --resume is refused" 1 "cannot be combined with --resume" -- "$T" train --resume "$WORK/tr/last.h5" \
  --out "$WORK/tr3" --export-data "$WORK/x.h5"

A="$BIN/attention"
check "attention on a translate checkpoint" 0 "attention modules" -- "$A" -c "$WORK/tr/best.h5" --src "a b c d" --out "$WORK/att"
exists "attention writes the data, heatmaps and the page" "$WORK/att/attention.h5" "$WORK/att/attention.html" \
  "$WORK/att/heatmaps/decoder.layers.0.cross_attn.head1.png" "$WORK/att/heatmaps/encoder.layers.0.self_attn.head0.grad.png"
check "attention.html embeds well-formed data for every module" 0 "^3 modules" -- /usr/bin/python3 -c "
import json, re, sys
page = open('$WORK/att/attention.html', encoding='utf-8').read()
data = json.loads(re.search(r'<script id=\"data\" type=\"application/json\">(.*?)</script>', page, re.S).group(1))
assert all(len(l['weights']) == 2 and len(l['grad']) == 2 for l in data['layers'])
print(len(data['layers']), 'modules')"
# One vocabulary and one embedding table for both sides, also as the output
# layer: the checkpoint holds no tgt_embed or generator weights, and every
# program rebuilds the tied model from it (attention's greedy translation is
# decode's, so it ran the same model).
check "translate train --shared-vocab --tie-output" 0 "BLEU greedy" -- "$T" train --task copy "${TINY[@]}" --steps 200 \
  --eval-every 100 --save-every 200 --shared-vocab --tie-output --out "$WORK/tied"
needs "the tied checkpoint has no target table or output layer" h5ls &&
  check "the tied checkpoint has no target table or output layer" 0 "^absent$" -- bash -c \
  "h5ls -r '$WORK/tied/best.h5' | grep -E 'tgt_embed|generator' || echo absent"
check "translate --src-vocab-size sizes the source vocabulary alone" 0 "source vocabulary 20, target vocabulary 12" -- \
  "$T" train --task copy "${TINY[@]}" --vocab-size 12 --src-vocab-size 20 --steps 20 --beam 1 --show 0 --out "$WORK/vocab"
check "translate: --src-vocab-size that differs under --shared-vocab is refused" 1 "cannot differ" -- \
  "$T" train --task copy "${TINY[@]}" --shared-vocab --vocab-size 12 --src-vocab-size 20 --steps 2 --out "$WORK/vocab2"
check "attention's greedy translation equals decode's (same model rebuilt)" 0 "" -- bash -c \
  "a=\$('$A' -c '$WORK/tied/best.h5' --src 'a b c d e' --out '$WORK/att_tied' | sed -n 's/^translation (greedy): //p'); \
   d=\$('$T' decode -c '$WORK/tied/best.h5' --beam 1 'a b c d e'); echo \"attention: \$a / decode: \$d\"; [[ -n \$a && \$a == \"\$d\" ]]"
check "attention: a translate checkpoint needs --src" 1 "--src" -- "$A" -c "$WORK/tr/best.h5" --out "$WORK/att2"

L="$BIN/lm"
for i in $(seq 1 300); do echo "the cat sat on the mat and the dog ran to the cat $((i % 7))"; done > "$WORK/text.txt"
check "lm train on a small text" 0 "validation loss" -- "$L" train --text "$WORK/text.txt" --tokenizer char --d-model 32 --heads 2 --layers 1 \
  --block 16 --batch 8 --steps 40 --warmup 5 --eval-every 20 --save-every 20 --sample-len 20 --out "$WORK/lm"
check "lm: with the char tokenizer bits/char equals bits/token" 0 "^equal" -- bash -c \
  "tail -1 '$WORK/lm/log.csv' | awk -F, '{ print (\$7 == \$8 && \$8 > 0 ? \"equal\" : \"differ\"), \$7, \$8 }'"
check "lm train --time-budget fits its length after the warmup and trains to it" 0 "fitted to [0-9]+ steps" -- "$L" train \
  --text "$WORK/text.txt" --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --time-budget 2 --warmup 10 \
  --eval-every 100000 --save-every 100000 --sample-len 0 --out "$WORK/lm_budget"
exists "lm writes checkpoints, the log and the plot" "$WORK/lm/best.h5" "$WORK/lm/last.h5" "$WORK/lm/log.csv" "$WORK/lm/loss.svg"
check "lm train --precision bf16" 0 "precision bf16" -- "$L" train --text "$WORK/text.txt" --d-model 32 --heads 2 \
  --layers 1 --block 16 --batch 8 --steps 10 --warmup 2 --eval-every 10 --sample-len 5 --precision bf16 --out "$WORK/lm_bf16"
check "lm train --precision bf16-matmul" 0 "precision bf16-matmul" -- "$L" train --text "$WORK/text.txt" --d-model 32 \
  --heads 2 --layers 1 --block 16 --batch 8 --steps 10 --warmup 2 --eval-every 10 --sample-len 5 \
  --precision bf16-matmul --out "$WORK/lm_bfm"
check "lm sample" 0 "the" -- "$L" sample -c "$WORK/lm/best.h5" --prompt "the" --max-new 20 --top-k 5 --top-p 0.9
check "lm train --ema evaluates and samples with the averaged weights" 0 "averaged weights, --ema 0.9" -- "$L" train \
  --text "$WORK/text.txt" --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --steps 20 --warmup 2 --eval-every 10 \
  --sample-len 5 --ema 0.9 --out "$WORK/lm_ema"
check "lm sample from an --ema checkpoint" 0 "the" -- "$L" sample -c "$WORK/lm_ema/best.h5" --prompt "the" --max-new 5
check "translate test of an lm checkpoint is refused" 1 "not a translate checkpoint" -- "$T" test -c "$WORK/lm/best.h5"
check "lm train with BPE tokens" 0 "validation loss" -- "$L" train --text "$WORK/text.txt" --tokenizer bpe --vocab-size 300 --warmup 2 \
  --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --steps 10 --eval-every 10 --sample-len 5 --out "$WORK/lm_bpe"
check "lm: a BPE token spans several characters, so bits/char is below bits/token" 0 "^below" -- bash -c \
  "tail -1 '$WORK/lm_bpe/log.csv' | awk -F, '{ print (\$8 < \$7 ? \"below\" : \"not below\"), \$7, \$8 }'"
check "lm train --export-data" 0 "exported the data, the initial weights and the windows of the 10 batches" -- "$L" train --text "$WORK/text.txt" \
  --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --steps 10 --warmup 2 --eval-every 10 --sample-len 0 \
  --out "$WORK/lm_export" --export-data "$WORK/lm_export.h5"
exists "lm writes the export" "$WORK/lm_export.h5"
check "lm: --export-data with --resume is refused" 1 "cannot be combined with --resume" -- "$L" train --resume "$WORK/lm/last.h5" \
  --out "$WORK/lm3" --export-data "$WORK/x.h5"
check "lm: a missing text file is named" 1 "no such file" -- "$L" train --text "$WORK/none.txt"
check "lm sample: a translate checkpoint is refused" 1 "not an lm checkpoint" -- "$L" sample -c "$WORK/tr/best.h5"
check "attention on an lm checkpoint" 0 "attention modules" -- "$A" -c "$WORK/lm/best.h5" --text "the cat sat on" --out "$WORK/att_lm"
exists "attention (lm) writes its page" "$WORK/att_lm/attention.html" "$WORK/att_lm/heatmaps/blocks.0.self_attn.head1.png"

# --device cuda: where this build has no CUDA or this machine no GPU, one clear
# error at the start (exit status 1, the message naming the flag), never a
# crash; where a GPU is usable, the run simply works (tools/gpu_check.sh runs
# the programs on a GPU for real).
device_check() {  # device_check NAME -- command...
  local name=$1
  shift 2
  local out status
  out=$("$@" 2>&1)
  status=$?
  if [[ $status == 0 ]]; then
    echo "ok   $name (a GPU is usable here: it ran on it)"
  elif [[ $status == 1 ]] && grep -qE -- "--device cuda(:[0-9]+)?: " <<<"$out"; then
    echo "ok   $name ($(grep -oE -- "--device cuda[^;]*" <<<"$out" | head -1))"
  else
    echo "FAIL $name: exit status $status without a clear --device error"
    echo "$out" | tail -20
    failures=$((failures + 1))
  fi
}
device_check "lm train --device cuda works or says clearly why not" -- "$L" train --text "$WORK/text.txt" --device cuda \
  --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --steps 2 --warmup 1 --eval-every 2 --sample-len 0 --out "$WORK/lm_cuda"
device_check "translate decode --device cuda:0 works or says clearly why not" -- "$T" decode -c "$WORK/tr/best.h5" --device cuda:0 "a b c"
device_check "translate train --device cuda:7 works or says clearly why not" -- "$T" train --task copy "${TINY[@]}" --steps 2 \
  --eval-every 2 --device cuda:7 --out "$WORK/tr_cuda7"
check "a malformed --device is refused" 1 "--device gpu: unknown device" -- "$L" train --text "$WORK/text.txt" --device gpu

# Several ranks (docs/distributed.md): HEED_TEST_MPIEXEC names mpirun when
# heed has MPI (set by CMake). Two ranks train one model; rank 0 alone writes
# and reports; a run moves between numbers of ranks; an error on one rank
# ends both.
if [[ -n ${HEED_TEST_MPIEXEC:-} ]]; then
  MPI=("$HEED_TEST_MPIEXEC" -np 2 --oversubscribe)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  LM2=(--text "$WORK/text.txt" --tokenizer char --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --warmup 5
       --sample-len 20)
  check "mpirun -np 2 lm train: two ranks, one report" 0 "lm: 2 ranks" -- "${MPI[@]}" "$L" train "${LM2[@]}" --steps 30 \
    --eval-every 15 --save-every 15 --out "$WORK/lm_np2"
  check "mpirun -np 2 lm train: rank 0 alone writes the log" 0 "^3$" -- bash -c "wc -l < '$WORK/lm_np2/log.csv'"
  check "mpirun -np 2 lm train: the whole run's report, printed once" 0 "^1$" -- bash -c \
    "'${MPI[0]}' -np 2 --oversubscribe '$L' train ${LM2[*]} --steps 6 --eval-every 6 --out '$WORK/lm_np2b' 2>/dev/null | grep -c 'over the whole validation split'"
  check "mpirun -np 2 lm train --stop-at, then resumed by one process" 0 "resuming a run of 2 ranks with 1" -- bash -c \
    "'${MPI[0]}' -np 2 --oversubscribe '$L' train ${LM2[*]} --steps 30 --stop-at 15 --eval-every 15 --out '$WORK/lm_np2s' >/dev/null 2>&1 && \
     '$L' train --resume '$WORK/lm_np2s/last.h5' --out '$WORK/lm_np2r' 2>&1"
  check "one process's lm run resumed by two ranks" 0 "resuming a run of 1 rank with 2" -- "${MPI[@]}" "$L" train \
    --resume "$WORK/lm/best.h5" --out "$WORK/lm_np2t" --stop-at 25
  check "mpirun -np 2 translate train --accumulate 2" 0 "BLEU greedy" -- "${MPI[@]}" "$T" train --task copy "${TINY[@]}" \
    --steps 20 --eval-every 20 --accumulate 2 --out "$WORK/tr_np2"
  check "mpirun -np 2: --export-data is refused on every rank" 1 "--export-data: run it in one process" -- "${MPI[@]}" "$L" train \
    "${LM2[@]}" --steps 2 --export-data "$WORK/x.h5" --out "$WORK/lm_np2x"
  check "mpirun -np 2: an error on one rank ends both" 1 "rank 1 of 2: lm: error: --text .*nothing.txt" -- "${MPI[@]}" bash -c \
    "if [[ \$OMPI_COMM_WORLD_RANK == 1 ]]; then t='$WORK/nothing.txt'; else t='$WORK/text.txt'; fi; \
     exec '$L' train --text \"\$t\" --tokenizer char --d-model 32 --heads 2 --layers 1 --block 16 --batch 8 --steps 5 --out '$WORK/lm_np2e'"
else
  echo "skip the programs under mpirun: heed has no MPI here"
fi

if ((failures > 0)); then
  echo "$failures program check(s) failed"
  exit 1
fi
echo "all program checks passed"
