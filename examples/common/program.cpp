#include "examples/common/program.h"

#include <fmt/core.h>

#include "examples/common/run_config.h"
#include "tensor/error.h"

namespace heed::examples {

void configure_app(CLI::App& app) {
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

void add_device_flag(CLI::App& command, std::string& device) {
  command.add_option("--device", device, "cpu or cuda[:index]")->capture_default_str();
}

void add_threads_flag(CLI::App& command, int64_t& threads) {
  command.add_option("--threads", threads, "CPU threads (0 = HEED_NUM_THREADS or all)")->check(CLI::NonNegativeNumber);
}

io::Checkpoint load_checkpoint_of(const std::string& path, const std::string& program, const std::string& what) {
  io::Checkpoint ckpt = io::load_checkpoint(path);
  const std::string written_by = Config(ckpt.config).str("program");
  HEED_CHECK(written_by == program, "{} is not {} checkpoint (program = {})", path, what, written_by);
  return ckpt;
}

int run_main(CLI::App& app, int argc, char** argv, const std::string& program, const std::function<int()>& command) {
  CLI11_PARSE(app, argc, argv);
  try {
    return command();
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: error: {}\n", program, e.what());
    return 1;
  }
}

}  // namespace heed::examples
