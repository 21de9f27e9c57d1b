#pragma once
// One PyTorch reference file (../shared/reference/README.md is the contract)
// as heed's reference test sees it, and the registry of ops that run them.
//
// ---- Adding an op ---------------------------------------------------------------
// Write one function in a tests/reference/ops_<area>.cpp (new files are
// picked up on re-configure) that builds the op from the file and registers
// its outputs; the runner does the rest (backward, every comparison):
//
//   // linear: y = x W^T + b
//   void linear(RefCase& c) {
//     nn::Linear lin({c.attr_int("in_features"), c.attr_int("out_features"), c.attr_bool("has_bias")});
//     c.load_params(lin);                 // params/* by dotted name; their grads are compared
//     c.out("y", lin.forward(c.input("x")));
//   }
//   HEED_REFERENCE_OP("linear", linear);
//
// Read every shape and value from the file (other sets have other shapes and
// hyper-parameters). Everything the op reads from inputs/ (float ones) and
// params/ is a leaf that requires grad when the file has a backward; the
// runner then compares grads/inputs/<name> and grads/params/<name> with the
// gradients those leaves received. Every dataset of outputs/ and grads/ must
// be produced and every produced one must be in the file: nothing is left
// unchecked. A heed::Error thrown by the function fails that file only.
//
// Ops without a backward (optimizers, clipping, schedules) run under
// NoGradGuard and register nested outputs: c.out("params/weight", stacked).
#include <map>
#include <string>
#include <vector>

#include "io/hdf5.h"
#include "nn/module.h"
#include "tensor/ops.h"

namespace heed::reference {

using nn::NamedTensors;

class RefCase {
 public:
  // Every input and parameter is moved to `device` as it is read, and
  // load_params() moves the module (parameters and buffers) there, so the op
  // runs on that device; outputs and gradients are compared on the CPU.
  explicit RefCase(const std::string& path, Device device = kCPU);

  const std::string& path() const { return path_; }
  Device device() const { return device_; }
  const std::string& op() const { return op_; }
  // True when grad_output/ holds a dataset: the runner will run backward.
  bool runs_backward() const { return backward_; }
  io::h5::File& file() { return file_; }

  // ---- configuration: root attributes ----
  bool has_attr(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;  // float or integer attributes
  std::string attr_string(const std::string& name) const;
  bool attr_bool(const std::string& name) const;  // an int64 that must be 0 or 1

  // ---- inputs/<name> ----
  // uint8 becomes a bool mask, int64 stays; a float input is a leaf that
  // requires grad when the file has a backward (grads/inputs/<name>).
  // Reading a name twice gives the same tensor.
  bool has_input(const std::string& name) const;
  Tensor input(const std::string& name);
  // Every input under inputs/<group>/ (recursively), named relative to it:
  // inputs_under("grads") gives {"bias", ...} for inputs/grads/bias, ...
  NamedTensors inputs_under(const std::string& group);

  // ---- params/<name> (dotted names) ----
  bool has_param(const std::string& name) const;
  // A leaf that requires grad when the file has a backward; its gradient is
  // compared with grads/params/<name>.
  Tensor param(const std::string& name);
  // Every parameter of the file, in name order (each as param(name)).
  NamedTensors params();
  // Moves the module to device(), copies every params/* into it by dotted
  // name (every file param must match a module parameter of that name and
  // shape and the other way round, else an error listing the names), then
  // tracks the module's parameters: their gradients are compared with
  // grads/params/<name>.
  void load_params(nn::Module& module);
  // Tracks a tensor's gradient as grads/<key> ("params/w", "inputs/x").
  void track_grad(const std::string& key, const Tensor& t);

  // ---- results ----
  // Registers outputs/<name> ("y", or nested: "params/weight").
  void out(const std::string& name, const Tensor& t);

  // For the runner.
  const std::map<std::string, Tensor>& outputs() const { return outputs_; }
  // grads/<key> for every tracked leaf (zeros where none arrived).
  std::map<std::string, Tensor> grads() const;

 private:
  Tensor read_input(const std::string& name);

  std::string path_;
  Device device_;
  io::h5::File file_;
  std::string op_;
  bool backward_ = false;
  std::map<std::string, Tensor> inputs_;   // by name under inputs/
  std::map<std::string, Tensor> tracked_;  // grads/<key> -> leaf
  std::map<std::string, Tensor> outputs_;  // outputs/<name> -> result
};

// ---- the registry ----------------------------------------------------------------
using OpFn = void (*)(RefCase&);

// Adds an op; a second registration of a name is recorded as a problem the
// runner reports before running anything.
bool register_op(const std::string& name, OpFn fn);
// nullptr when no op of that name is registered.
OpFn find_op(const std::string& name);
std::vector<std::string> registered_ops();
const std::vector<std::string>& registry_problems();

#define HEED_REFERENCE_OP(name, fn) \
  static const bool heed_reference_registered_##fn = ::heed::reference::register_op(name, fn)

}  // namespace heed::reference
