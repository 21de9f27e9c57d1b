// heed_reference [--device DEVICE] [DIR or FILE ...]: checks heed against
// PyTorch reference files (../shared/reference/README.md). With no file
// argument it reads the folder $HEED_REFERENCE_DIR. Every *.h5 file of each
// folder is run (sorted); one line per file, then "N passed, M failed". Exit 0
// only when every file passed and at least one was read.
//
// The ops run on DEVICE ("cpu", "cuda", "cuda:N"; default
// $HEED_REFERENCE_DEVICE, else cpu): inputs, parameters and buffers are moved
// there, outputs and gradients come back to the CPU for the comparison. When
// that device cannot be used here (no GPU, or heed built without CUDA) it
// says why and exits with 77, which ctest's reference_cuda reports as skipped.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "tensor/grad_mode.h"
#include "cuda/register.h"
#include "nn/attention.h"
#include "tests/reference/case.h"
#include "tests/reference/compare.h"

namespace fs = std::filesystem;
using namespace heed;
using namespace heed::reference;

namespace {

struct FileResult {
  std::string op = "?";
  Comparison comparison;
};

// Compares the datasets under `group` of the file with what heed produced
// under the same names: each must be in both.
void compare_group(io::h5::File& file, const std::string& group, const std::map<std::string, Tensor>& produced,
                   double rtol, double atol, Comparison& c) {
  std::vector<std::string> stored = file.is_group(group) ? file.list_datasets(group) : std::vector<std::string>{};
  for (const std::string& name : stored) {
    std::string full = group + "/" + name;
    auto it = produced.find(name);
    if (it == produced.end()) {
      c.problems.push_back(fmt::format("{}: in the file, but heed produced no such result", full));
      continue;
    }
    compare(full, it->second, file.read(full), rtol, atol, c);
  }
  for (const auto& [name, t] : produced)
    if (std::find(stored.begin(), stored.end(), name) == stored.end())
      c.problems.push_back(fmt::format("{}/{}: heed produced it, but the file has no such dataset", group, name));
}

// The exit status for "this device cannot be used here" (tests/CMakeLists.txt
// gives it to ctest as SKIP_RETURN_CODE).
constexpr int kExitSkipped = 77;

// Why `device` cannot run here; empty when it can.
std::string unavailable_reason(Device device) {
  if (device.is_cpu()) return "";
  if (!cuda::built_with_cuda()) return "heed was built without CUDA (HEED_CUDA=OFF, or no nvcc was found)";
  const int n = device_count(DeviceType::CUDA);
  if (n == 0) return "no GPU visible (heed was built with CUDA, but the driver reports no device)";
  if (device.index >= n) return fmt::format("{} does not exist: {} GPU(s) visible", device, n);
  return "";
}

// Runs one file: forward, outputs/, then backward and grads/ when it has one.
void run_file(const std::string& path, Device device, FileResult& r) {
  RefCase c(path, device);
  r.op = c.op();
  OpFn fn = find_op(c.op());
  if (fn == nullptr) {
    std::string known;
    for (const std::string& name : registered_ops()) known += (known.empty() ? "" : " ") + name;
    r.comparison.problems.push_back(
        fmt::format("unknown op '{}': heed has no reference implementation of it (known: {})", c.op(), known));
    return;
  }
  const double rtol = c.attr_double("rtol"), atol = c.attr_double("atol");
  {
    // Files without a backward (optimizers, schedules) run like torch.no_grad().
    std::unique_ptr<NoGradGuard> no_grad;
    if (!c.runs_backward()) no_grad = std::make_unique<NoGradGuard>();
    fn(c);
  }
  io::h5::File& file = c.file();
  compare_group(file, "outputs", c.outputs(), rtol, atol, r.comparison);

  if (!c.runs_backward()) {
    if (file.is_group("grads") && !file.list_datasets("grads").empty())
      r.comparison.problems.push_back("grads/ has datasets but grad_output/ is empty: nothing to run backward from");
    return;
  }
  // seed = sum_k sum(outputs/k * grad_output/k): backward from every output
  // k at once, each with its upstream gradient.
  TensorList roots, seeds;
  for (const std::string& k : file.list_datasets("grad_output")) {
    auto it = c.outputs().find(k);
    HEED_CHECK(it != c.outputs().end(), "grad_output/{} names an output heed did not produce", k);
    const Tensor& y = it->second;
    Tensor g = file.read("grad_output/" + k);
    HEED_CHECK(g.shape() == y.shape(), "grad_output/{} has shape {}, but heed's output has {}", k, shape_str(g.shape()),
               shape_str(y.shape()));
    HEED_CHECK(y.requires_grad(), "outputs/{} has a grad_output but heed's result is not part of a graph", k);
    roots.push_back(y);
    seeds.push_back(to_device(to_dtype(g, y.dtype()), y.device()));
  }
  run_backward(roots, seeds);
  compare_group(file, "grads", c.grads(), rtol, atol, r.comparison);
}

// The *.h5 files an argument names: a file itself, or a folder's, sorted.
std::vector<std::string> files_of(const std::string& arg, std::vector<std::string>& errors) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    for (const auto& entry : fs::directory_iterator(arg, ec))
      if (entry.path().extension() == ".h5") files.push_back(entry.path().string());
    if (ec) errors.push_back(fmt::format("{}: cannot list the folder ({})", arg, ec.message()));
    std::sort(files.begin(), files.end());
    if (files.empty() && !ec) errors.push_back(fmt::format("{}: no *.h5 files in this folder", arg));
  } else if (fs::exists(arg, ec)) {
    files.push_back(arg);
  } else {
    errors.push_back(fmt::format("{}: no such file or folder", arg));
  }
  return files;
}

int usage(std::FILE* to, int code) {
  std::fprintf(to,
               "usage: heed_reference [--device DEVICE] [--attention fused|composed] [DIR or FILE ...]\n"
               "  Checks heed against PyTorch reference files (*.h5). With no file argument,\n"
               "  reads the folder named by $HEED_REFERENCE_DIR.\n"
               "  --device DEVICE  where the ops run: cpu, cuda or cuda:N (default\n"
               "                   $HEED_REFERENCE_DEVICE, else cpu). Exits with %d when that\n"
               "                   device cannot be used here.\n"
               "  --attention IMPL scaled dot-product attention's implementation: fused\n"
               "                   (FlashAttention-2) or composed (default $HEED_ATTENTION, else\n"
               "                   fused where it applies).\n",
               kExitSkipped);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Line by line, so the files before a crash are still reported.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<std::string> args;
  std::string device_text;
  if (const char* env = std::getenv("HEED_REFERENCE_DEVICE")) device_text = env;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") return usage(stdout, 0);
    if (a == "--device") {
      if (i + 1 == argc) {
        std::fprintf(stderr, "heed_reference: --device needs a value (cpu, cuda or cuda:N)\n");
        return usage(stderr, 2);
      }
      device_text = argv[++i];
    } else if (a.rfind("--device=", 0) == 0) {
      device_text = a.substr(9);
    } else if (a == "--attention" || a.rfind("--attention=", 0) == 0) {
      std::string impl;
      if (a == "--attention") {
        if (i + 1 == argc) {
          std::fprintf(stderr, "heed_reference: --attention needs a value (fused or composed)\n");
          return usage(stderr, 2);
        }
        impl = argv[++i];
      } else {
        impl = a.substr(12);
      }
      if (impl != "fused" && impl != "composed") {
        std::fprintf(stderr, "heed_reference: --attention must be fused or composed, got '%s'\n", impl.c_str());
        return usage(stderr, 2);
      }
      nn::set_default_attention_impl(impl == "fused" ? nn::AttentionImpl::Fused : nn::AttentionImpl::Composed);
    } else {
      args.push_back(a);
    }
  }
  Device device = kCPU;
  if (!device_text.empty()) {
    try {
      device = Device::parse(device_text);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "heed_reference: bad device '%s': %s\n", device_text.c_str(), e.what());
      return 2;
    }
  }
  if (const std::string why = unavailable_reason(device); !why.empty()) {
    std::printf("[skip] heed_reference on %s: %s\n", device.str().c_str(), why.c_str());
    return kExitSkipped;
  }
  if (!registry_problems().empty()) {
    for (const std::string& p : registry_problems()) std::fprintf(stderr, "heed_reference: %s\n", p.c_str());
    return 2;
  }
  if (args.empty()) {
    const char* dir = std::getenv("HEED_REFERENCE_DIR");
    if (dir == nullptr || *dir == '\0') {
      std::fprintf(stderr, "heed_reference: no argument and HEED_REFERENCE_DIR is not set\n");
      return usage(stderr, 2);
    }
    args.emplace_back(dir);
  }

  std::vector<std::string> errors, files;
  for (const std::string& a : args)
    for (std::string& f : files_of(a, errors)) files.push_back(std::move(f));
  for (const std::string& e : errors) std::fprintf(stderr, "heed_reference: %s\n", e.c_str());

  int passed = 0, failed = 0;
  for (const std::string& path : files) {
    FileResult r;
    try {
      run_file(path, device, r);
    } catch (const std::exception& e) {
      r.comparison.problems.push_back(fmt::format("error: {}", e.what()));
    }
    const Comparison& c = r.comparison;
    std::string worst = c.worst_at.empty() ? "-" : fmt::format("{:.3g} at {}", c.worst, c.worst_at);
    std::printf("%s  %s  op=%s  worst=%s\n", c.ok() ? "PASS" : "FAIL", path.c_str(), r.op.c_str(), worst.c_str());
    for (const std::string& p : c.problems) std::printf("      %s\n", p.c_str());
    (c.ok() ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed (on %s, %s attention)\n", passed, failed, device.str().c_str(),
              nn::default_attention_impl() == nn::AttentionImpl::Composed ? "composed" : "fused");
  if (files.empty()) std::fprintf(stderr, "heed_reference: no reference file was read\n");
  return failed == 0 && errors.empty() && !files.empty() ? 0 : 1;
}
