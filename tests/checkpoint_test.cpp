// Checkpoints (io/checkpoint.h): the round trip of every part, atomic saves
// that survive SIGKILL, damaged and foreign files, restore's checks, and a
// training run resumed in a new process that continues bit for bit.
//
// Child processes: a few cases re-run this test binary (/proc/self/exe) on a
// hidden case "[.]" with the work described in environment variables, so the
// child is a fresh process, as a resumed training run is.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "io/checkpoint.h"
#include "optim/clip_grad.h"
#include "nn/gpt.h"
#include "io/hdf5.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "optim/lr_schedule.h"
#include "optim/optim.h"
#include "tensor/ops.h"
#include "tests/test_util.h"

using namespace heed;
using Catch::Contains;
namespace fs = std::filesystem;
using heed::test::TempDir;

namespace {

// Linear + LayerNorm and an int64 buffer: parameters, buffers, two dtypes.
class TinyNet : public nn::Module {
 public:
  explicit TinyNet(int64_t in = 4, int64_t out = 3, Generator* gen = nullptr) : nn::Module("TinyNet") {
    linear = register_module("linear", std::make_shared<nn::Linear>(nn::LinearOptions{in, out}, gen));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{out}));
    seen = &register_buffer("seen", from_vector<int64_t>({3, -1, int64_t{1} << 40}));
  }
  Tensor forward(const Tensor& x) { return norm->forward(linear->forward(x)); }
  std::shared_ptr<nn::Linear> linear;
  std::shared_ptr<nn::LayerNorm> norm;
  Tensor* seen;
};

// Model, optimizer, schedule and generator together, as a training program has them.
struct TinyRun {
  Generator gen;
  TinyNet model;
  optim::AdamW opt;
  optim::WarmupCosineSchedule sched;
  explicit TinyRun(uint64_t seed, int64_t in = 4)
      : gen(seed), model(in, 3, &gen), opt(model.named_parameters(), {1e-2}), sched(opt, {1e-2, 1e-3, 2, 20}) {}
  // A few steps so that every state tensor and counter is non-trivial.
  void train(int steps) {
    for (int s = 0; s < steps; ++s) {
      Tensor x = randn({5, model.linear->options().in_features}, &gen);
      Tensor loss = (model.forward(x) * model.forward(x)).mean();
      loss.backward();
      sched.step();
      opt.step();
      opt.zero_grad();
    }
  }
};

io::Checkpoint full_checkpoint(TinyRun& run) {
  io::Checkpoint c = io::capture(run.model, &run.opt, &run.sched, &run.gen);
  c.training = {{"step", 3}, {"epoch", 1}, {"data_position", -(int64_t{1} << 45)}};
  c.config = {{"d_model", "16"}, {"name", "caf\xc3\xa9\nline two"}, {"empty", ""}};
  c.texts = {{"src_vocab", std::string("a\0b\nc\xff", 6)}, {"empty", ""}};
  c.history = {2.5, 1.0 / 3.0, -0.0, 1e-300};
  c.rng_seed = ~uint64_t{0} - 5;  // above INT64_MAX: stored as the int64 bit pattern
  return c;
}

// Same names, dtypes, shapes and bytes (the order aside).
void require_same_tensors(const nn::NamedTensors& got, const nn::NamedTensors& want) {
  std::map<std::string, Tensor> a(got.begin(), got.end()), b(want.begin(), want.end());
  REQUIRE(a.size() == got.size());
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : b) {
    INFO(name);
    REQUIRE(a.count(name) == 1);
    const Tensor& g = a.at(name);
    REQUIRE(g.dtype() == t.dtype());
    REQUIRE(g.shape() == t.shape());
    dispatch_dtype(t.dtype(), [&](auto x) {
      using T = decltype(x);
      REQUIRE(g.to_vector<T>() == t.to_vector<T>());
    });
  }
}

void require_same(const io::Checkpoint& got, const io::Checkpoint& want) {
  require_same_tensors(got.model, want.model);
  REQUIRE(got.optimizer_type == want.optimizer_type);
  require_same_tensors(got.optimizer_tensors, want.optimizer_tensors);
  REQUIRE(got.optimizer_scalars == want.optimizer_scalars);
  REQUIRE(got.scheduler_type == want.scheduler_type);
  REQUIRE(got.scheduler_state == want.scheduler_state);
  REQUIRE(got.rng_seed == want.rng_seed);
  REQUIRE(got.rng_offset == want.rng_offset);
  REQUIRE(got.training == want.training);
  REQUIRE(got.config == want.config);
  REQUIRE(got.texts == want.texts);
  REQUIRE(got.history.size() == want.history.size());
  for (size_t i = 0; i < want.history.size(); ++i) {
    REQUIRE(std::memcmp(&got.history[i], &want.history[i], sizeof(double)) == 0);  // -0.0 too
  }
}

std::vector<char> read_bytes(const std::string& path) {
  std::vector<char> bytes(fs::file_size(path));
  std::ifstream(path, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Starts this test binary on one hidden test case with extra environment
// variables; returns the child's pid.
pid_t spawn_self(const std::string& test_name, const std::map<std::string, std::string>& env) {
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", name = test_name;
  std::vector<char*> argv{exe.data(), name.data(), nullptr};
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

// ---- round trip ----------------------------------------------------------------

TEST_CASE("checkpoint: fnv1a64 gives the published FNV-1a values", "[checkpoint]") {
  REQUIRE(io::fnv1a64("", 0) == 0xcbf29ce484222325ULL);
  REQUIRE(io::fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
  REQUIRE(io::fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
  REQUIRE(io::fnv1a64("bar", 3, io::fnv1a64("foo", 3)) == 0x85944171f73967e8ULL);  // it continues
}

TEST_CASE("checkpoint: every part round-trips through a file and restores into fresh objects", "[checkpoint]") {
  TempDir dir;
  TinyRun run(7);
  run.train(3);
  io::Checkpoint saved = full_checkpoint(run);
  REQUIRE(saved.optimizer_type == "AdamW");
  REQUIRE(saved.scheduler_type == "WarmupCosineSchedule");
  REQUIRE(saved.model.size() == 5);  // linear.weight, linear.bias, norm.weight, norm.bias, seen
  REQUIRE(saved.optimizer_tensors.size() == 8);
  REQUIRE(saved.scheduler_state.at("last_step") == 3);

  const std::string path = dir.file("ckpt.h5");
  io::save_checkpoint(path, saved);
  REQUIRE(dir.names() == std::vector<std::string>{"ckpt.h5"});  // no temporary left
  io::Checkpoint loaded = io::load_checkpoint(path);
  require_same(loaded, saved);

  // The captured copies do not follow the live objects.
  std::vector<float> weight = run.model.linear->weight.to_vector<float>();
  run.train(1);
  REQUIRE(run.model.linear->weight.to_vector<float>() != weight);
  require_same_tensors(io::load_checkpoint(path).model, saved.model);

  TinyRun fresh(99);
  io::restore(loaded, fresh.model, &fresh.opt, &fresh.sched, &fresh.gen);
  io::Checkpoint again = io::capture(fresh.model, &fresh.opt, &fresh.sched, &fresh.gen);
  require_same_tensors(again.model, saved.model);
  require_same_tensors(again.optimizer_tensors, saved.optimizer_tensors);
  REQUIRE(again.optimizer_scalars == saved.optimizer_scalars);
  REQUIRE(again.scheduler_state == saved.scheduler_state);
  REQUIRE(fresh.gen.seed() == saved.rng_seed);
  REQUIRE(fresh.gen.offset() == saved.rng_offset);
  REQUIRE(fresh.opt.step_count() == 3);
  REQUIRE(fresh.sched.last_step() == 3);
  fresh.train(1);  // and the two stay in lockstep
}

TEST_CASE("checkpoint: a checkpoint of a model alone, and an empty one", "[checkpoint]") {
  TempDir dir;
  TinyNet model;
  io::Checkpoint c = io::capture(model);
  REQUIRE(c.optimizer_type.empty());
  REQUIRE(c.scheduler_type.empty());
  io::save_checkpoint(dir.file("model.h5"), c);
  require_same(io::load_checkpoint(dir.file("model.h5")), c);
  TinyNet other;
  io::restore(io::load_checkpoint(dir.file("model.h5")), other);
  REQUIRE(other.linear->weight.to_vector<float>() == model.linear->weight.to_vector<float>());

  io::save_checkpoint(dir.file("empty.h5"), io::Checkpoint{});
  require_same(io::load_checkpoint(dir.file("empty.h5")), io::Checkpoint{});
}

TEST_CASE("checkpoint: the file is plain HDF5 with the documented layout", "[checkpoint]") {
  TempDir dir;
  TinyRun run(3);
  run.train(2);
  const std::string path = dir.file("layout.h5");
  io::save_checkpoint(path, full_checkpoint(run));
  io::h5::File f = io::h5::File::open(path);
  REQUIRE(f.read_attr_string("/", "format") == "heed-checkpoint");
  REQUIRE(f.read_attr_int("/", "format_version") == 1);
  REQUIRE(f.has_attr("/", "content_fnv1a64"));
  REQUIRE(f.shape("model/linear.weight") == Shape{3, 4});
  Tensor w = f.read("model/linear.weight");
  REQUIRE(static_cast<uint64_t>(f.read_attr_int("model/linear.weight", "fnv1a64")) ==
          io::fnv1a64(w.raw_data(), w.numel() * sizeof(float)));
  REQUIRE(f.read_attr_string("optimizer", "type") == "AdamW");
  REQUIRE(f.is_dataset("optimizer/exp_avg.linear.weight"));
  REQUIRE(f.read_attr_double("optimizer/scalars", "step") == 2);
  REQUIRE(f.read_attr_string("scheduler", "type") == "WarmupCosineSchedule");
  REQUIRE(f.read_attr_double("scheduler/state", "last_step") == 2);
  REQUIRE(static_cast<uint64_t>(f.read_attr_int("rng", "seed")) == ~uint64_t{0} - 5);
  REQUIRE(f.read_attr_int("training", "epoch") == 1);
  REQUIRE(f.read_attr_string("config", "d_model") == "16");
  REQUIRE(f.dtype("texts/src_vocab") == DType::UInt8);
  REQUIRE(f.shape("history") == Shape{4});
}

TEST_CASE("checkpoint: names that cannot be stored are refused before anything is written", "[checkpoint]") {
  TempDir dir;
  io::Checkpoint c;
  c.model = {{"a/b", zeros({1})}};
  REQUIRE_THROWS_WITH(io::save_checkpoint(dir.file("x.h5"), c),
                      Contains(dir.file("x.h5")) && Contains("model tensor name 'a/b' cannot be stored"));
  c.model = {{"w", zeros({1})}, {"w", zeros({1})}};
  REQUIRE_THROWS_WITH(io::save_checkpoint(dir.file("x.h5"), c), Contains("model tensor 'w' is given twice"));
  c.model = {{"w", Tensor()}};
  REQUIRE_THROWS_WITH(io::save_checkpoint(dir.file("x.h5"), c), Contains("model tensor 'w' is an undefined tensor"));
  c.model.clear();
  c.config = {{"", "x"}};
  REQUIRE_THROWS_WITH(io::save_checkpoint(dir.file("x.h5"), c), Contains("config name '' cannot be stored"));
  REQUIRE(dir.names().empty());
}

// ---- atomic saves -----------------------------------------------------------------

namespace {
constexpr int64_t kBigFloats = 12'500'000;  // 50 MB of float32

// Version v: every value says v, so a file mixing two versions is caught.
io::Checkpoint versioned(int64_t v) {
  io::Checkpoint c;
  c.model = {{"big", full({kBigFloats}, static_cast<double>(v))}, {"small", full({3}, static_cast<double>(v), DType::Int64)}};
  c.training["version"] = v;
  c.history.assign(static_cast<size_t>(v % 7), static_cast<double>(v));
  return c;
}

// The version the file at `path` holds; fails unless all of it is that version.
int64_t complete_version(const std::string& path) {
  io::Checkpoint c = io::load_checkpoint(path);
  int64_t v = c.training.at("version");
  REQUIRE(c.model.size() == 2);
  for (const auto& [name, t] : c.model) {
    INFO(name << " of version " << v);
    REQUIRE(to_dtype(t.min(), DType::Float64).item<double>() == static_cast<double>(v));
    REQUIRE(to_dtype(t.max(), DType::Float64).item<double>() == static_cast<double>(v));
  }
  REQUIRE(c.history == std::vector<double>(static_cast<size_t>(v % 7), static_cast<double>(v)));
  return v;
}
}  // namespace

TEST_CASE("checkpoint child: save versions in a loop until killed", "[.][checkpoint_child]") {
  const std::string path = env_or_empty("HEED_CKPT_LOOP_PATH");
  if (path.empty()) return;  // only as a child of the SIGKILL test
  int64_t v = std::stoll(env_or_empty("HEED_CKPT_LOOP_START"));
  for (int i = 0; i < 1000; ++i) io::save_checkpoint(path, versioned(v++));  // bounded, should the parent die
}

TEST_CASE("checkpoint: a save killed at any moment leaves one complete version", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.h5");
  io::save_checkpoint(path, versioned(0));
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> delay_ms(0, 400);
  int64_t version = 0, advanced = 0;
  for (int round = 0; round < 6; ++round) {
    pid_t child = spawn_self("checkpoint child: save versions in a loop until killed",
                             {{"HEED_CKPT_LOOP_PATH", path}, {"HEED_CKPT_LOOP_START", std::to_string(version + 1)}});
    // Wait for the child to be saving (its temporary exists) and, every other
    // round, for a save of its to have finished, so that on a loaded machine
    // (a slow start) the kills still land both inside and after saves.
    const std::string tmp = path + ".tmp-" + std::to_string(child);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    auto started = [&] { return fs::exists(tmp) || complete_version(path) > version; };
    while (!started() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    while (round % 2 == 1 && complete_version(path) == version && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(child, SIGKILL);
    REQUIRE(wait_exit_code(child) == 128 + SIGKILL);
    int64_t now = complete_version(path);
    INFO("round " << round << ": version " << version << " -> " << now);
    REQUIRE(now >= version);
    advanced += now > version;
    version = now;
    // Only the killed child's own temporary may be left beside it.
    for (const std::string& name : dir.names())
      REQUIRE((name == "ckpt.h5" || name == "ckpt.h5.tmp-" + std::to_string(child)));
    fs::remove(path + ".tmp-" + std::to_string(child));
  }
  REQUIRE(advanced > 0);  // some kills came after a finished save
  io::save_checkpoint(path, versioned(version + 1));
  REQUIRE(complete_version(path) == version + 1);
  REQUIRE(dir.names() == std::vector<std::string>{"ckpt.h5"});
}

TEST_CASE("checkpoint: a failed save names the path, keeps the old file and removes its temporary",
          "[checkpoint]") {
  TempDir dir;
  const io::Checkpoint old_one = versioned(1);

  // A missing folder.
  const std::string missing = dir.file("no/such/folder/ckpt.h5");
  REQUIRE_THROWS_WITH(io::save_checkpoint(missing, old_one), Contains("save_checkpoint '" + missing + "'") &&
                                                             Contains("cannot create"));

  // The rename fails (the path is a folder with something in it): the
  // temporary was written and must be gone again.
  fs::create_directories(dir.file("taken/inside"));
  REQUIRE_THROWS_WITH(io::save_checkpoint(dir.file("taken"), old_one),
                      Contains("save_checkpoint '" + dir.file("taken") + "'") && Contains("cannot rename"));
  REQUIRE(dir.names() == std::vector<std::string>{"taken"});
  fs::remove_all(dir.file("taken"));

  // A read-only folder: the old file stays as it was.
  const std::string path = dir.file("ro/ckpt.h5");
  fs::create_directories(dir.file("ro"));
  io::save_checkpoint(path, old_one);
  fs::permissions(dir.file("ro"), fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
  bool can_still_write = ::access(dir.file("ro").c_str(), W_OK) == 0;  // root can
  if (can_still_write) {
    WARN("running as root: a read-only folder is writable here, so that part is not checked");
  } else {
    REQUIRE_THROWS_WITH(io::save_checkpoint(path, versioned(2)),
                        Contains("save_checkpoint '" + path + "'") && Contains("cannot create"));
    REQUIRE(complete_version(path) == 1);
    REQUIRE(fs::directory_iterator(dir.file("ro")) != fs::directory_iterator());
  }
  fs::permissions(dir.file("ro"), fs::perms::owner_all, fs::perm_options::replace);
  // Not even root may create a file in /proc.
  REQUIRE_THROWS_WITH(io::save_checkpoint("/proc/heed_ckpt.h5", old_one),
                      Contains("save_checkpoint '/proc/heed_ckpt.h5'") && Contains("cannot create"));
  REQUIRE(complete_version(path) == 1);
}

// ---- damaged and foreign files -------------------------------------------------------

namespace {
std::string small_checkpoint_file(const TempDir& dir) {
  TinyRun run(5);
  run.train(2);
  std::string path = dir.file("good.h5");
  io::save_checkpoint(path, full_checkpoint(run));
  return path;
}
}  // namespace

TEST_CASE("checkpoint: a missing, foreign or truncated file is an error naming it", "[checkpoint]") {
  TempDir dir;
  const std::string good = small_checkpoint_file(dir);
  REQUIRE_THROWS_WITH(io::load_checkpoint(dir.file("none.h5")),
                      Contains("load_checkpoint '" + dir.file("none.h5") + "'") && Contains("no such file"));
  const std::string text = dir.file("text.h5");
  std::ofstream(text) << "not HDF5 at all, but long enough to have held a superblock if it were\n";
  REQUIRE_THROWS_WITH(io::load_checkpoint(text), Contains(text) && Contains("not an HDF5 file"));

  const std::string foreign = dir.file("foreign.h5");
  {
    io::h5::File f = io::h5::File::create(foreign);
    f.write_attr_string("/", "op", "linear");
    f.write("params/weight", zeros({2, 2}));
  }
  REQUIRE_THROWS_WITH(io::load_checkpoint(foreign),
                      Contains(foreign) && Contains("not a heed checkpoint (no root attribute 'format')"));

  const auto size = fs::file_size(good);
  const std::vector<char> bytes = read_bytes(good);
  for (double fraction : {0.999, 0.9, 0.75, 0.5, 0.25, 0.1, 0.01, 0.0}) {
    std::vector<char> cut(bytes.begin(), bytes.begin() + static_cast<long>(size * fraction));
    write_bytes(dir.file("cut.h5"), cut);
    INFO("kept " << cut.size() << " of " << size << " bytes");
    REQUIRE_THROWS_WITH(io::load_checkpoint(dir.file("cut.h5")), Contains("load_checkpoint '" + dir.file("cut.h5") + "'"));
  }
}

TEST_CASE("checkpoint: damaged layouts and versions are listed", "[checkpoint]") {
  TempDir dir;
  const std::string good = small_checkpoint_file(dir);
  auto edited = [&](const std::string& name, const std::function<void(io::h5::File&)>& edit) {
    std::string path = dir.file(name);
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    io::h5::File f = io::h5::File::open(path, io::h5::Mode::ReadWrite);
    edit(f);
    return path;
  };

  std::string v2 = edited("v2.h5", [](io::h5::File& f) { f.write_attr_int("/", "format_version", 2); });
  REQUIRE_THROWS_WITH(io::load_checkpoint(v2), Contains(v2) && Contains("format_version 2 is not supported (this heed reads version 1)"));

  std::string wrong_format = edited("format.h5", [](io::h5::File& f) { f.write_attr_string("/", "format", "other"); });
  REQUIRE_THROWS_WITH(io::load_checkpoint(wrong_format), Contains("not a heed checkpoint (root attribute format = 'other')"));

  std::string no_model = edited("nomodel.h5", [](io::h5::File& f) { f.remove("model"); });
  REQUIRE_THROWS_WITH(io::load_checkpoint(no_model),
                      Contains(no_model) && Contains("missing group '/model'") && Contains("content checksum mismatch"));

  std::string extra = edited("extra.h5", [](io::h5::File& f) { f.write("model/added", zeros({2})); });
  REQUIRE_THROWS_WITH(io::load_checkpoint(extra), Contains("dataset '/model/added' has no integer 'fnv1a64' attribute") &&
                                                  Contains("content checksum mismatch"));

  // A changed value with a matching data checksum is still caught by the content checksum.
  std::string resaved = edited("resaved.h5", [](io::h5::File& f) {
    Tensor w = ones({3, 4});
    f.remove("model/linear.weight");
    f.write("model/linear.weight", w);
    f.write_attr_int("model/linear.weight", "fnv1a64",
                     static_cast<int64_t>(io::fnv1a64(w.raw_data(), 12 * sizeof(float))));
  });
  REQUIRE_THROWS_WITH(io::load_checkpoint(resaved), Contains("content checksum mismatch"));

  std::string bad_history = edited("history.h5", [](io::h5::File& f) {
    Tensor h = zeros({2}, DType::Float32);
    f.remove("history");
    f.write("history", h);
    f.write_attr_int("history", "fnv1a64", static_cast<int64_t>(io::fnv1a64(h.raw_data(), 8)));
  });
  REQUIRE_THROWS_WITH(io::load_checkpoint(bad_history), Contains("'/history' is float32 [2], expected float64 [n]"));

  std::string bad_attr = edited("attr.h5", [](io::h5::File& f) { f.write_attr_double("training", "step", 1.5); });
  REQUIRE_THROWS_WITH(io::load_checkpoint(bad_attr), Contains("attribute /training@step is a float, expected an integer"));

  std::string changed_config = edited("config.h5", [](io::h5::File& f) { f.write_attr_string("config", "d_model", "32"); });
  REQUIRE_THROWS_WITH(io::load_checkpoint(changed_config), Contains("content checksum mismatch") && Contains("1 problem"));
}

TEST_CASE("checkpoint: every flipped data byte is a checksum error", "[checkpoint]") {
  TempDir dir;
  const std::string good = small_checkpoint_file(dir);
  // Find where linear.weight's bytes lie in the file and flip each of them.
  Tensor w = io::h5::File::open(good).read("model/linear.weight");
  const std::vector<char> bytes = read_bytes(good);
  std::string needle(static_cast<const char*>(w.raw_data()), 12 * sizeof(float));
  size_t at = std::string(bytes.begin(), bytes.end()).find(needle);
  REQUIRE(at != std::string::npos);
  for (size_t i = 0; i < needle.size(); ++i) {
    std::vector<char> copy = bytes;
    copy[at + i] = static_cast<char>(copy[at + i] ^ (1 << (i % 8)));
    write_bytes(dir.file("flipped.h5"), copy);
    REQUIRE_THROWS_WITH(io::load_checkpoint(dir.file("flipped.h5")),
                        Contains("checksum mismatch in '/model/linear.weight'") && Contains("the file is corrupt"));
  }
}

TEST_CASE("checkpoint: hundreds of damaged copies fail cleanly or load unchanged", "[checkpoint]") {
  TempDir dir;
  const std::string good = small_checkpoint_file(dir);
  const io::Checkpoint original = io::load_checkpoint(good);
  const std::vector<char> bytes = read_bytes(good);
  const std::string bad = dir.file("damaged.h5");
  // HEED_FUZZ_SEED and HEED_FUZZ_TRIALS run a longer or another search by hand.
  const std::string seed = env_or_empty("HEED_FUZZ_SEED"), trials = env_or_empty("HEED_FUZZ_TRIALS");
  std::mt19937_64 rng(seed.empty() ? 12345 : std::stoull(seed));
  const int n = trials.empty() ? 400 : std::stoi(trials);
  int errors = 0, unchanged = 0;
  for (int trial = 0; trial < n; ++trial) {
    std::vector<char> copy = bytes;
    std::string what;
    switch (trial % 4) {
      case 0:
      case 1: {  // one byte somewhere, every bit pattern
        size_t at = rng() % copy.size();
        copy[at] = static_cast<char>(copy[at] ^ static_cast<char>(1 + rng() % 255));
        what = "byte " + std::to_string(at) + " changed";
        break;
      }
      case 2: {  // a run of bytes overwritten
        size_t at = rng() % copy.size(), n = 1 + rng() % 64;
        for (size_t i = at; i < std::min(copy.size(), at + n); ++i) copy[i] = static_cast<char>(rng());
        what = std::to_string(n) + " bytes from " + std::to_string(at) + " overwritten";
        break;
      }
      case 3: {  // cut short
        copy.resize(rng() % copy.size());
        what = "cut to " + std::to_string(copy.size()) + " bytes";
        break;
      }
    }
    write_bytes(bad, copy);
    INFO("trial " << trial << ": " << what);
    try {
      io::Checkpoint c = io::load_checkpoint(bad);
      require_same(c, original);  // a byte nothing reads (padding, free space)
      ++unchanged;
    } catch (const Error& e) {
      REQUIRE_THAT(e.what(), Contains("load_checkpoint '" + bad + "'"));
      ++errors;
    }
  }
  INFO(errors << " damaged copies failed, " << unchanged << " loaded unchanged");
  // About one byte in eight is never read (free space in object headers,
  // padding): changing it changes nothing, which require_same checked.
  REQUIRE(errors > n * 3 / 4);
}

// ---- restore's checks -------------------------------------------------------------

TEST_CASE("restore lists every mismatch and changes nothing", "[checkpoint]") {
  TinyRun source(1);
  source.train(2);
  const io::Checkpoint c = io::capture(source.model, &source.opt, &source.sched, &source.gen);

  TinyRun target(2, /*in=*/5);  // linear.weight [3, 5] where the checkpoint has [3, 4]
  target.train(1);
  const io::Checkpoint before = io::capture(target.model, &target.opt, &target.sched, &target.gen);
  auto unchanged = [&] { require_same(io::capture(target.model, &target.opt, &target.sched, &target.gen), before); };

  REQUIRE_THROWS_WITH(io::restore(c, target.model, &target.opt, &target.sched, &target.gen),
                      Contains("restore: the checkpoint does not fit this TinyNet") && Contains("nothing was changed") &&
                          Contains("model: 'linear.weight' is [3, 4] float32 in the checkpoint, [3, 5] float32 here") &&
                          Contains("optimizer: 'exp_avg.linear.weight' is [3, 4] float32 in the checkpoint"));
  unchanged();

  io::Checkpoint edited = c;
  edited.model.erase(edited.model.begin());  // linear.weight
  edited.model.emplace_back("extra.weight", zeros({2}));
  edited.model.back().second = zeros({1});
  TinyRun same(3);
  const io::Checkpoint same_before = io::capture(same.model, &same.opt, &same.sched, &same.gen);
  REQUIRE_THROWS_WITH(io::restore(edited, same.model, &same.opt, &same.sched, &same.gen),
                      Contains("model: missing 'linear.weight' ([3, 4] float32)") &&
                          Contains("model: unexpected 'extra.weight'") && Contains("2 problems"));

  edited = c;
  edited.model[4].second = zeros({3});  // the int64 buffer 'seen' as float32
  REQUIRE_THROWS_WITH(io::restore(edited, same.model),
                      Contains("model: 'seen' is [3] float32 in the checkpoint, [3] int64 here"));

  edited = c;
  edited.optimizer_type = "Adam";
  REQUIRE_THROWS_WITH(io::restore(edited, same.model, &same.opt),
                      Contains("optimizer: the checkpoint's is Adam, this one is AdamW"));
  edited = c;
  edited.optimizer_scalars["step"] = 1.5;
  edited.optimizer_scalars.erase("lr");
  REQUIRE_THROWS_WITH(io::restore(edited, same.model, &same.opt),
                      Contains("optimizer: scalar 'step' = 1.5 is not valid") && Contains("missing scalar 'lr'"));

  optim::NoamSchedule noam(same.opt, {16, 4});
  REQUIRE_THROWS_WITH(io::restore(c, same.model, &same.opt, &noam),
                      Contains("scheduler: the checkpoint's is WarmupCosineSchedule, this one is NoamSchedule"));
  edited = c;
  edited.scheduler_state["last_step"] = 5;
  REQUIRE_THROWS_WITH(io::restore(edited, same.model, &same.opt, &same.sched),
                      Contains("scheduler: last_step 5 differs from the optimizer's step 2"));
  REQUIRE_THROWS_WITH(io::restore(io::capture(same.model), same.model, &same.opt, &same.sched),
                      Contains("optimizer: the checkpoint has no optimizer state (this one is AdamW)") &&
                          Contains("scheduler: the checkpoint has no scheduler state"));
  require_same(io::capture(same.model, &same.opt, &same.sched, &same.gen), same_before);

  // The model alone from a full training checkpoint is fine.
  io::restore(c, same.model);
  require_same_tensors(io::capture(same.model).model, c.model);
}

// ---- exact resume ----------------------------------------------------------------

namespace {
// A tiny GPT with dropout, so the generator's state matters, trained on
// random tokens drawn from the same generator.
struct GPTRun {
  Generator gen;
  nn::GPT model;
  optim::AdamW opt;
  optim::WarmupCosineSchedule sched;
  explicit GPTRun(uint64_t seed)
      : gen(seed),
        model(nn::GPTOptions{/*vocab=*/13, /*block_size=*/8, /*d_model=*/16, /*nhead=*/2, /*num_layers=*/2,
                             /*dim_feedforward=*/32, /*dropout=*/0.2},
              &gen),
        opt(model.named_parameters(), {3e-3}),
        sched(opt, {3e-3, 3e-4, 3, 20}) {}

  void train(int steps, std::vector<double>& losses) {
    model.train();
    for (int s = 0; s < steps; ++s) {
      Tensor seq = to_dtype(rand({4, 8}, &gen, DType::Float64) * 13.0, DType::Int64);  // [B, T+1]
      Tensor x = seq.narrow(1, 0, 7), y = seq.narrow(1, 1, 7);
      Tensor logits = model.forward(x);  // [B, T, V]
      Tensor loss = nn::cross_entropy(logits.reshape({28, 13}), y.reshape({28}));
      loss.backward();
      optim::clip_grad_norm(model.parameters(), 0.5);
      sched.step();
      opt.step();
      opt.zero_grad();
      losses.push_back(loss.item<float>());
    }
  }

  io::Checkpoint checkpoint(const std::vector<double>& losses) {
    io::Checkpoint c = io::capture(model, &opt, &sched, &gen);
    c.history = losses;
    c.training["step"] = opt.step_count();
    return c;
  }
};
constexpr int kResumeSteps = 6;  // N: the run is 2N steps
}  // namespace

TEST_CASE("checkpoint child: resume a GPT run and train N more steps", "[.][checkpoint_child]") {
  const std::string in = env_or_empty("HEED_CKPT_RESUME_IN"), out = env_or_empty("HEED_CKPT_RESUME_OUT");
  if (in.empty()) return;  // only as a child of the resume test
  GPTRun run(/*seed=*/4242);  // another seed: everything must come from the file
  io::Checkpoint c = io::load_checkpoint(in);
  io::restore(c, run.model, &run.opt, &run.sched, &run.gen);
  std::vector<double> losses = c.history;
  run.train(kResumeSteps, losses);
  io::save_checkpoint(out, run.checkpoint(losses));
}

TEST_CASE("checkpoint: a run resumed in a new process continues bit for bit", "[checkpoint]") {
  TempDir dir;
  GPTRun whole(17);
  std::vector<double> whole_losses;
  whole.train(2 * kResumeSteps, whole_losses);
  const io::Checkpoint want = whole.checkpoint(whole_losses);

  GPTRun first(17);
  std::vector<double> first_losses;
  first.train(kResumeSteps, first_losses);
  io::save_checkpoint(dir.file("half.h5"), first.checkpoint(first_losses));

  pid_t child = spawn_self("checkpoint child: resume a GPT run and train N more steps",
                           {{"HEED_CKPT_RESUME_IN", dir.file("half.h5")}, {"HEED_CKPT_RESUME_OUT", dir.file("end.h5")}});
  REQUIRE(wait_exit_code(child) == 0);
  io::Checkpoint got = io::load_checkpoint(dir.file("end.h5"));
  REQUIRE(got.history.size() == 2 * kResumeSteps);
  REQUIRE(got.history == whole_losses);  // exactly
  REQUIRE(got.training.at("step") == 2 * kResumeSteps);
  require_same(got, want);
  // The losses moved, so the comparison above compared something.
  REQUIRE(whole_losses.front() != whole_losses.back());
}

// ---- every part checks its own, restore checks all of them first ----------------

TEST_CASE("restore lists the problems of every part, averages included, and changes nothing", "[checkpoint]") {
  TinyRun source(1);
  optim::ExponentialMovingAverage source_ema(source.model.named_parameters(), 0.9);
  source.train(2);
  source_ema.update();
  io::Checkpoint c = io::capture(source.model, &source.opt, &source.sched, &source.gen, &source_ema);
  c.model.pop_back();                       // the model loses a name
  c.optimizer_scalars["step"] = 1.5;        // the optimizer's step is no count
  c.scheduler_state["warmup"] = 2;          // the schedule gets a key it does not save
  c.average_updates = -1;                   // the average a negative count

  TinyRun target(2);
  optim::ExponentialMovingAverage target_ema(target.model.named_parameters(), 0.9);
  target.train(1);
  target_ema.update();
  const io::Checkpoint before = io::capture(target.model, &target.opt, &target.sched, &target.gen, &target_ema);
  REQUIRE_THROWS_WITH(io::restore(c, target.model, &target.opt, &target.sched, &target.gen, &target_ema),
                      Contains("nothing was changed") && Contains("model: missing") &&
                          Contains("optimizer: scalar 'step' = 1.5 is not valid") &&
                          Contains("scheduler: unexpected key 'warmup'") &&
                          Contains("averages: the update count -1 is negative"));
  const io::Checkpoint after = io::capture(target.model, &target.opt, &target.sched, &target.gen, &target_ema);
  require_same(after, before);
  require_same_tensors(after.averages, before.averages);
  REQUIRE(target_ema.updates() == 1);

  // Each part's own check finds the same problems, and also changes nothing.
  std::vector<std::string> problems;
  target.opt.check_state(c.optimizer_tensors, c.optimizer_scalars, problems);
  target.sched.check_state(c.scheduler_state, problems);
  target_ema.check_state(c.averages, c.average_updates, problems);
  REQUIRE(problems.size() == 3);
  REQUIRE_THROWS_WITH(target.sched.load_state(c.scheduler_state),
                      Contains("WarmupCosineSchedule::load_state") && Contains("unexpected key 'warmup'"));
  require_same(io::capture(target.model, &target.opt, &target.sched, &target.gen), before);
}
