#pragma once
// Module: the base of every layer, in the spirit of PyTorch's C++ frontend
// but with plain std::shared_ptr ownership (no Impl/holder split). A module
// registers its parameters, buffers and children by name; the dotted paths
// ("encoder.layers.0.self_attn.q_proj.weight") are what checkpoints use.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/ops.h"

namespace heed::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The layer's type, e.g. "Linear" (for messages and printing).
  const std::string& type_name() const { return type_name_; }

  // Parameters, buffers and children in registration order, with dotted
  // paths when recursing.
  NamedTensors named_parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // This module ("") and every descendant, depth first.
  std::vector<std::pair<std::string, Module*>> named_modules();
  TensorList parameters(bool recurse = true) const;
  int64_t num_parameters() const;

  // Training mode switches dropout and the like; it recurses into children.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();
  // Calls fn on this module and every descendant (for custom initialisation).
  void apply(const std::function<void(const std::string& path, Module& m)>& fn);
  // Moves every parameter and buffer, keeping their handles valid.
  void to(Device device);
  void to(DType dtype);

 protected:
  // The returned reference is the module's own handle: keep it as a member.
  Tensor& register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_new_name(name);
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void check_new_name(const std::string& name) const;
  void collect(NamedTensors& out, const std::string& prefix, bool params, bool recurse) const;

  std::string type_name_;
  bool training_ = true;
  // Node-based lists keep the references handed out by register_* valid.
  std::vector<std::unique_ptr<std::pair<std::string, Tensor>>> params_;
  std::vector<std::unique_ptr<std::pair<std::string, Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// ---- loading saved tensors ---------------------------------------------------
//
// Every load of saved tensors makes one check, by name (module.cpp's match()):
// nn::load_parameters and load_state below, compare_named_tensors, and through
// it Optimizer::, LRScheduler:: and ExponentialMovingAverage::check_state and
// io::restore. Each load checks first and then copies, so a load that does not
// fit changes nothing; io::restore checks every part of a run before it loads
// any (through the load_checked_* functions, which do not check again).

// Copies `values` into the module's parameters, matched by dotted name as
// named_parameters() spells them (values are converted to each parameter's
// dtype and device; the handles stay the same). Every name must be a
// parameter of the same shape and every parameter must be given: otherwise it
// throws, listing the missing, unexpected and mismatched names, and changes
// nothing. A checkpoint or a reference file loads through this.
void load_parameters(Module& module, const NamedTensors& values);
// The same over parameters and buffers together: a module's whole state.
void load_state(Module& module, const NamedTensors& values);

// A module's whole state as load_state takes it and a checkpoint stores it:
// its parameters, then its buffers, by dotted name (handles, not copies).
NamedTensors module_state(const Module& module);
// Copies `values` into module_state(module) by name, converting dtype and
// device, without checking them: for values compare_named_tensors has
// already found fitting (io::restore's second phase).
void load_checked_state(Module& module, const NamedTensors& values);

// Copies each of `values` into the tensor of its name in `targets`, converting
// dtype and device, without checking: for values compare_named_tensors has
// found fitting. The targets are handles, so the copy reaches every handle of
// each tensor (a module's member, an optimizer's list).
void copy_named_tensors(const NamedTensors& targets, const NamedTensors& values);

// Names, shapes and dtypes of saved tensors against live ones: appends one
// line per problem (a name missing, unexpected, given twice or undefined, a
// shape or dtype that differs), each starting with `what`, and changes
// nothing. The dtypes must match: a saved state is restored exactly.
void compare_named_tensors(const char* what, const NamedTensors& live, const NamedTensors& saved,
                           std::vector<std::string>& problems);

// For error messages that list problems: "1 problem" / "3 problems", and the
// problems one a line ("\n  - ...").
std::string count_problems(const std::vector<std::string>& problems);
std::string list_problems(const std::vector<std::string>& problems);

}  // namespace heed::nn
