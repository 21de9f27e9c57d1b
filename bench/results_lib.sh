# shellcheck shell=bash
# What the bench/run_*.sh scripts share, sourced by each of them:
#
#   here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#   source "$here/results_lib.sh"
#
# Small functions only; messages name the calling script (${0##*/}), as the
# scripts' own do.

# Why: on a machine shared with other people's builds Linux splits the CPUs
# evenly between sessions, so a 2-thread run gets about one core. With
# HEED_BENCH_PRIORITY=1 this re-runs the calling script (call it first, as
# `bench_priority "$@"`) in a new session whose scheduler autogroup has
# nice -20 (needs root; without it the run goes on as is, and says so).
bench_priority() {
  if [[ "${HEED_BENCH_PRIORITY:-}" == 1 && -z "${HEED_BENCH_PRIORITY_SET:-}" ]]; then
    export HEED_BENCH_PRIORITY_SET=1
    # shellcheck disable=SC2016  # $0 and $@ are the inner bash's: the script and its arguments
    exec setsid -w bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null ||
      echo "${0##*/}: could not raise the autogroup priority; timing as is" >&2
      exec "$0" "$@"' "$0" "$@"
  fi
}

# Why: the CPU scripts build nothing; they time the bench binary they are
# given, and stop at once, saying how to build it, when it is not there.
#   bench_require_bin PATH TARGET   (TARGET: the CMake target, e.g. train_bench)
bench_require_bin() {
  if [[ ! -x "$1" ]]; then
    echo "${0##*/}: no $2 binary at '$1'; build it first" \
         "(cmake --build build --target $2) or pass its path" >&2
    exit 1
  fi
}

# Why: RESULTS.md shows the command that made each section, with the
# environment variables that changed it, so that a reader can rerun it.
#   bench_command_line "bench/run_x.sh $*" VAR...  prints VAR=value ... in
# front of the command for each VAR that is set and not empty (the last named
# first).
bench_command_line() {
  local command_line=$1 var
  shift
  for var in "$@"; do
    if [[ -n "${!var:-}" ]]; then command_line="$var=${!var} $command_line"; fi
  done
  printf '%s\n' "$command_line"
}

# Why: every CPU section starts its "- CPU:" line with the machine it ran on.
#   bench_machine [FALLBACK]  prints "MODEL NAME, N logical CPUs": the first
# "model name" of /proc/cpuinfo (FALLBACK, default "unknown", where there is
# none) and the CPUs online (what Python's os.cpu_count() counts).
bench_machine() {
  local line model
  if line="$(grep -m 1 '^model name' /proc/cpuinfo 2>/dev/null)"; then
    model="${line#*:}"
    model="${model#"${model%%[![:space:]]*}"}"
    model="${model%"${model##*[![:space:]]}"}"
  else
    model="${1:-unknown}"
  fi
  printf '%s, %s logical CPUs\n' "$model" "$(getconf _NPROCESSORS_ONLN)"
}

# Why: every section is dated the same way, in UTC, when it is written.
bench_date() {
  date -u '+%Y-%m-%d %H:%M UTC'
}

# Why: each script owns one section of bench/RESULTS.md, between
# <!-- NAME:begin --> and <!-- NAME:end -->, and rewrites only that one.
#   bench_write_section NAME SECTION_FILE RESULTS_FILE
# SECTION_FILE holds the new section, markers included (one trailing newline
# is dropped). It replaces the old section of RESULTS_FILE, or is appended
# after a blank line where there is none; a missing RESULTS_FILE starts as
# "# heed benchmark results".
bench_write_section() {
  local py
  py="$(command -v python3 || echo /usr/bin/python3)"
  "$py" - "${0##*/}" "$@" <<'PYEOF'
import os
import re
import sys

script, name, section_path, results_path = sys.argv[1:5]
with open(section_path) as f:
    section = f.read()
if section.endswith("\n"):
    section = section[:-1]
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
if not (section.startswith(begin) and section.endswith(end)):
    sys.exit(f"{script}: {section_path} is not a {name} section (from {begin} to {end}); "
             f"{results_path} is left as it was")
text = open(results_path).read() if os.path.exists(results_path) else "# heed benchmark results\n"
pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
with open(results_path, "w") as f:
    f.write(text)
PYEOF
}
