#!/usr/bin/env bash
# ctest's dist_faults: each fault of tests/dist/fault_test.cpp under
# `mpirun -np 2` must end the whole job, non-zero, soon, and with output that
# names the rank at fault; the control case `ok` must pass.
#   fault_test.sh MPIRUN PROGRAM
# Exits 77 (ctest: skipped) when heed was built without MPI.
set -uo pipefail
MPIRUN=$1
PROGRAM=$2

"$PROGRAM" --require-mpi || exit $?  # 77 without MPI: the [skip] line is printed

# OUTER: the hard limit on one case; `timeout` answers 124 (or 137 after -k)
# when it had to end mpirun, which means the job hung.
# BOUND: what a case may take. The slowest, hang and pending, wait out
# HEED_DIST_TIMEOUT=3 plus the start and end of a 2-rank job (under a second
# here, a few under AddressSanitizer on two busy cores); a case that hangs
# instead would last rank 1's sleep (300 s) or the default timeout (1800 s),
# so 30 s tells the two apart with a wide margin either way.
OUTER=60
BOUND=30
failures=0
output=$(mktemp)
trap 'rm -f "$output"' EXIT

# expect MODE WANT TIMEOUT PATTERN...: runs MODE; WANT is zero or nonzero;
# TIMEOUT is HEED_DIST_TIMEOUT for the run, or - for none (the default, 30
# minutes, far past OUTER: what ends such a job is not heed's timeout); each
# PATTERN (grep -E) must be in the combined output.
expect() {
  local mode=$1 want=$2 dist_timeout=$3
  shift 3
  local start status elapsed pattern problem=""
  local -a setting=(-u HEED_DIST_TIMEOUT)
  [[ $dist_timeout != - ]] && setting=(HEED_DIST_TIMEOUT="$dist_timeout")
  start=$EPOCHREALTIME
  env "${setting[@]}" timeout -k 10 "$OUTER" "$MPIRUN" -np 2 --oversubscribe "$PROGRAM" "$mode" >"$output" 2>&1
  status=$?
  elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  if [[ $status == 124 ]] || awk -v t="$elapsed" -v o="$OUTER" 'BEGIN { exit !(t >= o) }'; then
    problem="hung: ended by the outer timeout of ${OUTER} s"
  elif [[ $want == zero && $status != 0 ]]; then
    problem="exit status $status, wanted 0"
  elif [[ $want == nonzero && $status == 0 ]]; then
    problem="exit status 0, wanted non-zero"
  elif awk -v t="$elapsed" -v b="$BOUND" 'BEGIN { exit !(t >= b) }'; then
    problem="took ${elapsed} s, over the bound of ${BOUND} s"
  else
    for pattern in "$@"; do
      grep -qE -- "$pattern" "$output" || { problem="the output lacks /$pattern/"; break; }
    done
  fi
  if [[ -n $problem ]]; then
    echo "FAIL $mode: $problem (status $status, ${elapsed} s); its output:"
    sed 's/^/    /' "$output"
    failures=$((failures + 1))
  else
    echo "ok   $mode: status $status in ${elapsed} s"
  fi
}

# The control: both ranks finish, and mpirun says so.
expect ok zero - 'rank 0: ok' 'rank 1: ok'
# Rank 1 killed by SIGKILL: OpenMPI's runtime sees the process die and ends
# the job, naming it ("mpirun noticed that process rank 1 with PID ... on
# node ... exited on signal 9 (Killed).").
expect kill nonzero - 'process rank 1 .*exited on signal 9'
# Rank 1 alive but gone quiet: rank 0's wait runs out of time and ends the job.
expect hang nonzero 3 'heed dist: rank 0 of 2: .*has waited 3 s for all_reduce'
# Rank 1 throws out of dist::InitGuard's scope: the guard ends the job.
expect throw nonzero - 'heed dist: rank 1 of 2: an exception left the scope of dist::InitGuard'
# Rank 1 throws out of main: std::terminate aborts it (its message printed by
# the C++ runtime), and mpirun ends the job as for kill.
expect uncaught nonzero - 'rank 1 failed on purpose'
# Rank 0 leaves with an all_reduce_async it never waited for while rank 1 has
# gone quiet: finalize() waits for it with the same timeout.
expect pending nonzero 3 'heed dist: rank 0 of 2: .*has waited 3 s for all_reduce'

if ((failures)); then
  echo "$failures of the fault cases failed"
  exit 1
fi
echo "every fault case ended the job as it should"
