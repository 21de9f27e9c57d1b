#!/usr/bin/env bash
# Sets heed up on Debian bookworm (as root, or with sudo) and runs it. Works
# from a fresh clone on a fresh machine, and again and again after that.
#
#   bash tools/setup.sh main   install the packages, build Release in build/,
#                              prepare the corpora, and run the main job: train
#                              the default translation model (examples/translate)
#                              and print its BLEU and some translations
#   bash tools/setup.sh test   install the packages, then build and run every
#                              test in the configurations CI runs:
#                                cuda  Release with the CUDA backend in
#                                      build-cuda, when nvcc is here (device
#                                      tests skip without a GPU), everything
#                                      built, the install/consumer test too
#                                cpu   the same, CPU only, in build-cpu, when
#                                      there is no nvcc
#                                asan  CPU only (HEED_CUDA=OFF) with
#                                      AddressSanitizer + UBSan in build-asan
#
# Environment:
#   HEED_SKIP_APT=1        skip the apt step (the packages are already there)
#   HEED_JOBS=N            parallel build and test jobs (default 2)
#   HEED_TEST_TIMEOUT=S    per-test time limit for ctest (default 600)
#   HEED_MAIN_TIME_BUDGET=S  seconds of training for the main job (default 600)
#   HEED_CUDA_ARCH=A       CUDA architectures for build-cuda (default: the
#                          GPU's own, or 90 when no GPU is visible)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${HEED_JOBS:-2}
TEST_TIMEOUT=${HEED_TEST_TIMEOUT:-600}

# Everything heed needs from Debian, and nothing more:
#   build-essential cmake pkg-config    compilers and the build
#   libfmt-dev libhdf5-dev catch2       libraries heed and its tests use
#   libcli11-dev                        command-line parsing in examples/ and bench/
#   libopenmpi-dev openmpi-bin          MPI for heed::dist (docs/distributed.md): the
#                                       headers and library heed links, and mpirun, which
#                                       the dist_mpi test runs; without them heed builds
#                                       as a world of one process and dist_mpi is skipped
#   hdf5-tools                          h5dump, to look into checkpoints
#   python3-torch python3-h5py          the reference-data generator and the
#   python3-numpy                       benchmarks' PyTorch side
#   libopenblas0-pthread                the BLAS Debian's PyTorch should use: without
#                                       it (it is only a Recommends) torch.mm falls
#                                       back to the slow reference BLAS
#   trans-de-en                         the default translation corpus (Ding, GPL-2+)
#   bible-kjv                           the default language-model corpus (KJV, public domain)
APT_PACKAGES=(
  build-essential cmake pkg-config
  libfmt-dev libhdf5-dev hdf5-tools catch2 libcli11-dev
  libopenmpi-dev openmpi-bin
  python3 python3-numpy python3-h5py python3-torch libopenblas0-pthread
  trans-de-en bible-kjv
)

log() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'setup.sh: error: %s\n' "$*" >&2
  exit 1
}

install_packages() {
  if [[ ${HEED_SKIP_APT:-0} == 1 ]]; then
    log "Skipping apt (HEED_SKIP_APT=1)"
    return
  fi
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "All ${#APT_PACKAGES[@]} apt packages are installed"
    return
  fi
  local as_root=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "installing ${missing[*]} needs root (run as root, or install sudo)"
    as_root=(sudo)
  fi
  log "Installing apt packages: ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
}

find_nvcc() {
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then
    echo /usr/local/cuda/bin/nvcc
  else
    command -v nvcc || true
  fi
}

# configure_build_test NAME BUILD_DIR CMAKE_ARGS...: configure, build, run ctest.
# Sets STAGE to the step that failed; returns non-zero on failure.
configure_build_test() {
  local name=$1 dir=$2
  shift 2
  log "[$name] configure $dir: $*"
  STAGE="configure"
  cmake -S . -B "$dir" "$@" || return 1
  log "[$name] build"
  STAGE="build"
  cmake --build "$dir" -j "$JOBS" || return 1
  log "[$name] test"
  STAGE="test"
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" --timeout "$TEST_TIMEOUT" || return 1
  STAGE=
}

SUMMARY=()
FAILED=0
# run_config NAME BUILD_DIR CMAKE_ARGS...: runs one configuration and records its line in the summary.
run_config() {
  local name=$1 start=$SECONDS
  if configure_build_test "$@"; then
    SUMMARY+=("$(printf '%-5s passed   %4ds  %s' "$name" $((SECONDS - start)) "$2")")
  else
    SUMMARY+=("$(printf '%-5s FAILED   %4ds  %s (at %s)' "$name" $((SECONDS - start)) "$2" "$STAGE")")
    FAILED=1
  fi
}

mode_main() {
  install_packages
  log "Configure build/ (Release)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  log "Build the programs: translate, lm, attention"
  cmake --build build -j "$JOBS" --target translate lm attention
  log "Prepare the language-model corpus (data/cache/kjv.txt)"
  bash tools/prepare_data.sh data/cache
  # The run's length is fitted to its time budget of training steps (the
  # default, 600 s; HEED_MAIN_TIME_BUDGET changes it), so its schedule decays
  # to the end; a wall-clock --time-limit would cut it off before that, since
  # evaluations take time on top.
  log "Train the default translation model (German -> English, Ding sentences) into runs/translate"
  build/examples/translate train --out runs/translate --time-budget "${HEED_MAIN_TIME_BUDGET:-600}"
}

mode_test() {
  install_packages
  local total_start=$SECONDS
  printf '\nheed tests on %s: %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(c++ --version | head -n 1)"
  [[ -d ../shared/reference ]] || printf 'note: ../shared/reference is missing (the tests look for reference data there)\n'

  # One Release build runs everything (the examples, benchmarks and the
  # install test included): with the CUDA backend when nvcc is here, CPU-only
  # otherwise. The C++ sources compile the same either way (no #ifdef), so a
  # second Release build would test nothing new: the CPU-only build is the
  # sanitizer build below, which always runs with HEED_CUDA=OFF.
  local nvcc
  nvcc=$(find_nvcc)
  if [[ -n $nvcc ]]; then
    # ON, not AUTO: nvcc is here, so a CUDA build that quietly fell back to CPU
    # only would be a failure to report, not a pass. Without a GPU one
    # architecture proves the kernels compile; with one, build for it.
    local arch=90 gpu=""
    if nvidia-smi -L >/dev/null 2>&1; then
      arch=native
      gpu=$(nvidia-smi -L | head -n 1)
    fi
    run_config cuda build-cuda -DCMAKE_BUILD_TYPE=Release -DHEED_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc" \
      "-DCMAKE_CUDA_ARCHITECTURES=${HEED_CUDA_ARCH:-$arch}"
    if [[ -n $gpu ]]; then
      SUMMARY[-1]+=" [$gpu]"
    else
      SUMMARY[-1]+=" [no GPU visible: kernels compiled for sm_${HEED_CUDA_ARCH:-$arch}, device tests skipped]"
    fi
  else
    log "[cuda] no nvcc (neither /usr/local/cuda/bin/nvcc nor nvcc on PATH): the Release build is CPU-only"
    run_config cpu build-cpu -DCMAKE_BUILD_TYPE=Release -DHEED_CUDA=OFF
  fi

  # -O1 -g1 (line tables only): stack traces keep file and line, and the
  # sanitized build compiles in about half the time of -O2 -g.
  run_config asan build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
    -DHEED_CUDA=OFF -DHEED_SANITIZE=ON -DHEED_BUILD_EXAMPLES=OFF -DHEED_BUILD_BENCH=OFF

  printf '\n==> Summary (%ds in all)\n' $((SECONDS - total_start))
  printf '    %s\n' "${SUMMARY[@]}"
  return "$FAILED"
}

case "${1:-}" in
  main) mode_main ;;
  test) mode_test ;;
  *)
    printf 'usage: bash tools/setup.sh main|test\n' >&2
    printf '  main  install packages, build Release in build/, train the default translation model\n' >&2
    printf '  test  install packages, build and run every test: CPU-only, CUDA (when nvcc exists), sanitizers\n' >&2
    exit 2
    ;;
esac
