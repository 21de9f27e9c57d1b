#!/usr/bin/env bash
# The whole GPU suite in one command, for a machine with an NVIDIA GPU, the CUDA
# toolkit and heed's build dependencies (tools/setup.sh lists them); no network.
#
#   bash tools/gpu_check.sh              build here, then test and benchmark
#   bash tools/gpu_check.sh BUILD_DIR    use a CUDA build made elsewhere (phase 1
#                                        skipped): for a bare GPU machine with
#                                        the driver, the CUDA runtime and PyTorch
#                                        but none of heed's build dependencies;
#                                        ../shared/gpu/pack.sh carries a build
#                                        there and ../shared/gpu/device.sh runs
#                                        this in it
#
# Phases, each under `timeout`, all within HEED_GPU_CHECK_BUDGET seconds
# (default 530, so about 9 minutes on 16 cores):
#   1. configure build-cuda (HEED_CUDA=ON, the GPU's own architecture, tests,
#      examples and benchmarks) and build it with every core
#   2. ctest: every test, the CUDA ones and reference_cuda included
#   3. the programs on the GPU, briefly, on synthetic data: lm train (loss
#      printed) and sample, translate train on the copy task and decode, and
#      the first-step loss of lm on the GPU against the CPU's
#   4. bench/run_gpu.sh: kernels against cuBLAS and the memory bandwidth,
#      training steps against PyTorch; rewrites the GPU section of
#      bench/RESULTS.md
# A failed phase is reported and the next still runs (except after a failed
# build). The logs and the updated bench/RESULTS.md go to $OUT when it is set
# (else build-cuda/gpu_check/): summary.txt, build.log, ctest.log,
# programs.log, bench.log, RESULTS.md, bench_raw.tar.gz. Exit status 0 when
# every phase passed.
#
# Environment:
#   HEED_GPU_CHECK_BUDGET  seconds for everything (default 530)
#   HEED_CUDA_ARCH         CUDA architectures (default: the GPU's, from
#                          nvidia-smi; else 90, the H100/H200's)
#   HEED_JOBS              build and test jobs (default: all cores)
#   HEED_REFERENCE_DIR     PyTorch reference files for the reference tests
#                          (default: shared/reference in the repo, else
#                          ../shared/reference beside it)
#   HEED_TORCH_PYTHON, HEED_PEAK_GBS, HEED_GPU_QUICK, ...: see bench/run_gpu.sh
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
budget="${HEED_GPU_CHECK_BUDGET:-530}"
jobs="${HEED_JOBS:-$(nproc 2>/dev/null || echo 4)}"
build="${1:-build-cuda}"
prebuilt="${1:+yes}"
if [[ -n "$prebuilt" && ! -f "$build/CTestTestfile.cmake" ]]; then
  echo "gpu_check: $build is not a heed build folder (it has no CTestTestfile.cmake); build one with" \
    "-DHEED_CUDA=ON, or run without an argument to build here" >&2
  exit 2
fi
logs="${OUT:-$build/gpu_check}"
mkdir -p "$logs"
summary="$logs/summary.txt"
: > "$summary"
start=$SECONDS
deadline=$((start + budget))
failed=0

say() { echo "$*" | tee -a "$summary"; }
# The time a phase may take: its cap, or what is left after the minimums the
# phases after it need, whichever is less.
allowance() {  # allowance CAP LATER_MINIMUM
  local left=$((deadline - SECONDS - $2))
  ((left < $1)) && echo "$left" || echo "$1"
}
# phase NAME LOG SECONDS -- command...
phase() {
  local name=$1 log=$2 limit=$3
  shift 4
  if ((limit < 10)); then
    say "SKIP $name: out of time (budget $budget s)"
    failed=1
    return 1
  fi
  local t0=$SECONDS status=0
  echo "== $name (at most $limit s), log: $log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1 || status=$?
  local took=$((SECONDS - t0))
  if ((status == 0)); then
    say "ok   $name (${took} s)"
  elif ((status == 124 || status == 137)); then
    say "FAIL $name: timed out after ${took} s (limit $limit s); end of its log:"
    tail -n 15 "$log" | sed 's/^/       /' | tee -a "$summary"
    failed=1
  else
    say "FAIL $name: exit status $status after ${took} s; end of its log:"
    tail -n "${tail_lines:-25}" "$log" | sed 's/^/       /' | tee -a "$summary"
    failed=1
  fi
  return "$status"
}

# ---- 0. what is here -----------------------------------------------------------
commit="$(git rev-parse --short HEAD 2>/dev/null || true)"
if [[ -n "$commit" ]]; then
  git diff --quiet HEAD 2>/dev/null || commit="$commit (with local changes)"
else
  commit="unknown (no git here)"
fi
say "heed gpu_check at $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 |
    sed 's/^/GPU: /' | tee -a "$summary"
else
  say "no nvidia-smi here: the CUDA tests will skip and the GPU phases fail"
fi
nvcc_path="$(command -v nvcc || true)"
[[ -z "$nvcc_path" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_path=/usr/local/cuda/bin/nvcc
if [[ -n "$prebuilt" ]]; then
  say "using the build in $build, made elsewhere (configure and build skipped); $jobs jobs"
elif [[ -z "$nvcc_path" ]]; then
  say "FAIL no nvcc (CUDA toolkit) found in PATH or /usr/local/cuda/bin"
  exit 1
fi
[[ -z "$prebuilt" ]] && say "nvcc: $("$nvcc_path" --version | tail -1); cmake: $(cmake --version | head -1); $jobs jobs"
arch="${HEED_CUDA_ARCH:-}"
if [[ -z "$arch" ]]; then
  arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
  [[ "$arch" =~ ^[0-9]+$ ]] || arch=90
fi
reference="${HEED_REFERENCE_DIR:-}"
if [[ -z "$reference" ]]; then
  for d in "$repo/shared/reference" "$repo/../shared/reference"; do
    if [[ -d "$d" ]]; then
      reference="$(cd "$d" && pwd)"
      break
    fi
  done
fi
say "CUDA architectures: $arch; reference files: ${reference:-none found (the reference tests will say so)}"

# ---- 1. configure and build ----------------------------------------------------------
generator=()
command -v ninja >/dev/null 2>&1 && [[ ! -f "$build/Makefile" ]] && generator=(-G Ninja)
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
configure=(cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DHEED_CUDA=ON
  -DCMAKE_CUDA_COMPILER="$nvcc_path" -DCMAKE_CUDA_ARCHITECTURES="$arch"
  -DHEED_BUILD_TESTS=ON -DHEED_BUILD_EXAMPLES=ON -DHEED_BUILD_BENCH=ON "${launcher[@]}")
[[ -n "$reference" ]] && configure+=(-DHEED_REFERENCE_DIR="$reference")
: > "$logs/build.log"
if [[ -n "$prebuilt" ]]; then
  echo "(prebuilt: $build)" > "$logs/build.log"
elif ! phase "configure" "$logs/build.log" "$(allowance 120 260)" -- "${configure[@]}" ||
   ! phase "build ($jobs jobs)" "$logs/build.log" "$(allowance 330 190)" -- cmake --build "$build" -j "$jobs"; then
  say "the build failed: nothing to test (see build.log)"
  exit 1
fi

# ---- 2. every test ------------------------------------------------------------------------
: > "$logs/ctest.log"
phase "ctest" "$logs/ctest.log" "$(allowance 150 130)" -- \
  ctest --test-dir "$build" -j "$jobs" --timeout 120 --output-on-failure
grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)" "$logs/ctest.log" | tail -n 20 | tee -a "$summary"
skipped="$(grep -cE "\(Skipped\)" "$logs/ctest.log" || true)"
if [[ "$skipped" != 0 ]]; then
  say "note: $skipped test(s) skipped (a [cuda] test skips when heed sees no GPU):"
  grep -E "\(Skipped\)" "$logs/ctest.log" | head -n 10 | sed 's/^/       /' | tee -a "$summary"
fi

# ---- 3. the programs on the GPU -----------------------------------------------------------------
programs() {
  set -euo pipefail
  local bin="$build/examples" work="$build/gpu_check_programs"
  rm -rf "$work" && mkdir -p "$work"
  export HEED_NUM_THREADS=8
  for i in $(seq 1 400); do echo "the cat sat on the mat and the dog ran to the cat $((i % 7)) times"; done > "$work/text.txt"
  local lm=(--text "$work/text.txt" --d-model 64 --heads 4 --layers 2 --block 32 --batch 16 --warmup 5 --dropout 0)
  echo "-- lm train --device cuda, 60 steps"
  "$bin/lm" train "${lm[@]}" --steps 60 --eval-every 20 --save-every 60 --sample-len 40 --device cuda --out "$work/lm"
  echo "-- lm sample --device cuda"
  "$bin/lm" sample -c "$work/lm/best.h5" --prompt "the cat" --max-new 30 --top-k 5 --device cuda
  echo "-- translate train --task copy --device cuda, 80 steps"
  "$bin/translate" train --task copy --tokenizer word --d-model 64 --heads 4 --encoder-layers 2 --decoder-layers 2 \
    --ff 128 --max-tokens 2048 --lr 3e-3 --warmup 10 --steps 80 --eval-every 40 --save-every 80 --beam 2 \
    --beam-sentences 50 --show 2 \
    --device cuda --out "$work/tr"
  echo "-- translate decode --device cuda"
  "$bin/translate" decode -c "$work/tr/best.h5" --beam 3 --device cuda "a b c d" "e f g"
  echo "-- attention --device cuda"
  "$bin/attention" -c "$work/tr/best.h5" --src "a b c d" --device cuda --out "$work/att"
  # The same first step on both devices (no dropout; the same seed and batch):
  # the losses agree to float32 rounding.
  echo "-- lm: the first-step loss on the GPU against the CPU's"
  local cpu_loss gpu_loss
  # (1e-3 leaves room for TF32 matmuls; a wrong kernel is far off.)
  local short=(--steps 2 --warmup 1 --eval-every 2 --sample-len 0)
  cpu_loss="$("$bin/lm" train "${lm[@]}" "${short[@]}" --device cpu --out "$work/lm_cpu" 2>&1 |
    sed -n 's/.*first-step loss \([0-9.eE+-]*\).*/\1/p')"
  gpu_loss="$("$bin/lm" train "${lm[@]}" "${short[@]}" --device cuda --out "$work/lm_gpu" 2>&1 |
    sed -n 's/.*first-step loss \([0-9.eE+-]*\).*/\1/p')"
  echo "first-step loss: cpu $cpu_loss, cuda $gpu_loss"
  [[ -n "$cpu_loss" && -n "$gpu_loss" ]] || { echo "a first-step loss is missing"; return 1; }
  awk -v c="$cpu_loss" -v g="$gpu_loss" 'BEGIN { d = (c - g) / c; if (d < 0) d = -d;
    printf "relative difference %.2e (at most 1e-3 passes)\n", d; exit !(d <= 1e-3) }'
  # Mixed precision on the GPU: the same run in bf16 and in tf32 learns like
  # fp32 (final validation loss within 0.1 nats), and a bf16 run resumes.
  echo "-- lm train --precision bf16 / tf32 --device cuda, 60 steps each"
  local p v fp32_valid
  fp32_valid="$(tail -1 "$work/lm/log.csv" | cut -d, -f6)"
  for p in bf16 tf32; do
    "$bin/lm" train "${lm[@]}" --steps 60 --eval-every 20 --save-every 30 --sample-len 0 --device cuda \
      --precision "$p" --out "$work/lm_$p"
    v="$(tail -1 "$work/lm_$p/log.csv" | cut -d, -f6)"
    awk -v a="$fp32_valid" -v b="$v" -v p="$p" 'BEGIN { d = a - b; if (d < 0) d = -d;
      printf "final validation loss: fp32 %s, %s %s (within 0.1 passes)\n", a, p, b; exit !(d <= 0.1) }'
  done
  local resumed
  resumed="$("$bin/lm" train --resume "$work/lm_bf16/last.h5" --out "$work/lm_bf16" --sample-len 0 --device cuda 2>&1)"
  grep -q "precision bf16" <<<"$resumed"
  echo "a bf16 checkpoint resumed in bf16"
  # Exact resume on the GPU in mixed precision (the kernels are deterministic):
  # 40 translate steps in one run equal 20, a checkpoint, and 20 more.
  echo "-- translate --precision bf16 --device cuda: 40 steps vs 20 + resume 20"
  local tr=(--task reverse --tokenizer word --d-model 64 --heads 4 --encoder-layers 1 --decoder-layers 1 --ff 128
            --max-tokens 1024 --lr 3e-3 --warmup 10 --steps 40 --eval-every 10 --save-every 10 --beam 1 --show 0
            --precision bf16 --device cuda)
  "$bin/translate" train "${tr[@]}" --out "$work/bf16_full" > /dev/null 2>&1
  "$bin/translate" train "${tr[@]}" --stop-at 20 --out "$work/bf16_half" > /dev/null 2>&1
  "$bin/translate" train --resume "$work/bf16_half/last.h5" --out "$work/bf16_half" --eval-every 10 --save-every 10 \
    --beam 1 --show 0 --device cuda > /dev/null 2>&1
  diff <(cut -d, -f1,3,7-9 "$work/bf16_full/log.csv") <(cut -d, -f1,3,7-9 "$work/bf16_half/log.csv")
  echo "a bf16 translate run resumed on the GPU equals the uninterrupted one"
}
: > "$logs/programs.log"
phase "programs on the GPU (lm, translate, attention; CPU vs GPU first-step loss)" "$logs/programs.log" \
  "$(allowance 90 100)" -- bash -c "$(declare -f programs); build='$build'; programs"
grep -E "first-step loss|relative difference|final validation loss|validation loss [0-9]|BLEU greedy|memory: peak|resumed in bf16|resumed on the GPU" \
  "$logs/programs.log" | head -n 16 | sed 's/^/       /' | tee -a "$summary"

# ---- 4. benchmarks ------------------------------------------------------------------------------
bench_left=$((deadline - SECONDS))
: > "$logs/bench.log"
raw="$build/gpu_check_bench_raw"
rm -rf "$raw"
tail_lines=2 phase "bench/run_gpu.sh" "$logs/bench.log" "$bench_left" -- \
  env HEED_GPU_BUDGET=$((bench_left - 15)) HEED_GPU_RAW_DIR="$raw" bash bench/run_gpu.sh "$build"
cp bench/RESULTS.md "$logs/RESULTS.md" 2>/dev/null
[[ -d "$raw" ]] && tar -czf "$logs/bench_raw.tar.gz" -C "$raw" . 2>/dev/null
if grep -q "Not measured" "$logs/bench.log"; then
  grep "Not measured" "$logs/bench.log" | sed 's/^/       /' | tee -a "$summary"
fi

say "done in $((SECONDS - start)) s: $( ((failed == 0)) && echo 'every phase passed' || echo 'some phase FAILED (see above)')"
say "logs in $logs/"
# The benchmark tables, then the summary again: the end of the output is what a
# remote runner shows.
echo
sed -n '/<!-- gpu:begin -->/,/<!-- gpu:end -->/p' bench/RESULTS.md
echo
cat "$summary"
exit "$failed"
