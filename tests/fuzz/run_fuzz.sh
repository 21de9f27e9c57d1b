#!/usr/bin/env bash
# Fuzzes heed's text readers (tests/fuzz/fuzz_text.cpp: stored tokenizers,
# sentences, corpus files, BLEU) with clang's libFuzzer under AddressSanitizer
# and UndefinedBehaviorSanitizer, starting from tests/fuzz/corpus.
#
#   bash tests/fuzz/run_fuzz.sh [SECONDS] [JOBS]    (default 120 s, 1 job)
#
# Needs clang with libFuzzer (Debian: apt-get install clang-16 libfuzzer-16-dev)
# and libfmt-dev. Builds into build-fuzz/ from the sources themselves (the
# text readers need only fmt), runs, and leaves there the corpus it grew
# (corpus/) and any finding (crash-*, leak-*, timeout-*: the input that
# caused it). A finding fails the run; add its input to tests/fuzz/corpus
# once fixed, so every build's `ctest -R fuzz_replay` keeps checking it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-120}"
jobs="${2:-1}"
cxx=""
for c in clang++-16 clang++; do
  if command -v "$c" >/dev/null 2>&1; then cxx="$c"; break; fi
done
if [[ -z "$cxx" ]]; then
  echo "run_fuzz.sh: no clang++ found; install clang-16 and libfuzzer-16-dev" >&2
  exit 1
fi
out="$repo/build-fuzz"
mkdir -p "$out/corpus" "$out/findings"
sources=(tests/fuzz/fuzz_text.cpp data/bpe.cpp data/tokenizer.cpp data/corpus.cpp data/bleu.cpp data/tokenize_13a.cpp
         data/text_util.cpp)
echo "building $out/fuzz_text with $cxx"
(cd "$repo" && "$cxx" -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I. "${sources[@]}" -lfmt -o "$out/fuzz_text")
echo "fuzzing for $seconds s ($jobs job(s)); the grown corpus stays in $out/corpus"
status=0
(cd "$out/findings" && ASAN_OPTIONS=detect_leaks=1 "$out/fuzz_text" -max_total_time="$seconds" -max_len=4096 \
  -timeout=10 -rss_limit_mb=2048 -jobs="$jobs" -workers="$jobs" -print_final_stats=1 \
  "$out/corpus" "$repo/tests/fuzz/corpus") || status=$?
if compgen -G "$out/findings/crash-*" >/dev/null || compgen -G "$out/findings/leak-*" >/dev/null ||
   compgen -G "$out/findings/timeout-*" >/dev/null || compgen -G "$out/findings/oom-*" >/dev/null; then
  echo "run_fuzz.sh: findings in $out/findings:" >&2
  ls "$out/findings" | grep -E '^(crash|leak|timeout|oom)-' >&2
  exit 1
fi
exit "$status"
