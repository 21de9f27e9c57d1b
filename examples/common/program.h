#pragma once
// What every program's main shares: its CLI11 app's conventions, the --device
// flag of the commands that use a trained model, reading a checkpoint that
// must come from a given program, and the one error line a failure ends with.
#include <cstdint>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "io/checkpoint.h"

namespace heed::examples {

// A program with subcommands, before its flags are added: one subcommand is
// required, and a flag given twice takes its last value, so defaults can be
// overridden by appending.
void configure_app(CLI::App& app);

// --device: cpu or cuda[:index] (checked by device_from_flag when used).
void add_device_flag(CLI::App& command, std::string& device);
// --threads: CPU threads, 0 = HEED_NUM_THREADS or all cores.
void add_threads_flag(CLI::App& command, int64_t& threads);

// The checkpoint at `path`, which `program` must have written (its
// configuration's "program"); else an error "PATH is not <what> checkpoint
// (program = ...)", `what` being e.g. "an lm".
io::Checkpoint load_checkpoint_of(const std::string& path, const std::string& program, const std::string& what);

// A program's main once its flags are added: parses the command line (a bad
// flag: CLI11's message and usage, status non-zero), then runs `command`; an
// exception ends the program with "<program>: error: <what>" and status 1.
int run_main(CLI::App& app, int argc, char** argv, const std::string& program, const std::function<int()>& command);

}  // namespace heed::examples
