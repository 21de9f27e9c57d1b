#include "tests/reference/case.h"

#include <algorithm>

#include "tensor/grad_mode.h"

namespace heed::reference {

RefCase::RefCase(const std::string& path, Device device)
    : path_(path), device_(device), file_(io::h5::File::open(path)) {
  op_ = file_.read_attr_string("/", "op");
  // Every group should exist; a missing grad_output/ just means no backward.
  backward_ = file_.is_group("grad_output") && !file_.list_datasets("grad_output").empty();
}

bool RefCase::has_attr(const std::string& name) const { return file_.has_attr("/", name); }
int64_t RefCase::attr_int(const std::string& name) const { return file_.read_attr_int("/", name); }
double RefCase::attr_double(const std::string& name) const { return file_.read_attr_double("/", name); }
std::string RefCase::attr_string(const std::string& name) const { return file_.read_attr_string("/", name); }

bool RefCase::attr_bool(const std::string& name) const {
  int64_t v = attr_int(name);
  HEED_CHECK(v == 0 || v == 1, "reference '{}': attribute '{}' is {}, expected 0 or 1", path_, name, v);
  return v == 1;
}

bool RefCase::has_input(const std::string& name) const { return file_.is_dataset("inputs/" + name); }

Tensor RefCase::read_input(const std::string& name) {
  auto it = inputs_.find(name);
  if (it != inputs_.end()) return it->second;
  Tensor t = file_.read("inputs/" + name);
  if (t.dtype() == DType::UInt8) t = to_dtype(t, DType::Bool);  // masks: 1 = masked
  t = to_device(t, device_);  // before requires_grad_: the leaf lives on the device
  if (t.is_floating_point() && backward_) {
    t.requires_grad_();
    track_grad("inputs/" + name, t);
  }
  inputs_.emplace(name, t);
  return t;
}

Tensor RefCase::input(const std::string& name) {
  HEED_CHECK(has_input(name), "reference '{}' (op {}): no dataset inputs/{}", path_, op_, name);
  return read_input(name);
}

NamedTensors RefCase::inputs_under(const std::string& group) {
  HEED_CHECK(file_.is_group("inputs/" + group), "reference '{}' (op {}): no group inputs/{}", path_, op_, group);
  NamedTensors out;
  for (const std::string& rel : file_.list_datasets("inputs/" + group)) out.emplace_back(rel, read_input(group + "/" + rel));
  return out;
}

bool RefCase::has_param(const std::string& name) const { return file_.is_dataset("params/" + name); }

Tensor RefCase::param(const std::string& name) {
  std::string key = "params/" + name;
  auto it = tracked_.find(key);
  if (it != tracked_.end()) return it->second;
  HEED_CHECK(has_param(name), "reference '{}' (op {}): no dataset params/{}", path_, op_, name);
  Tensor t = to_device(file_.read(key), device_);
  HEED_CHECK(t.is_floating_point(), "reference '{}': params/{} is {}, expected float", path_, name, t.dtype());
  if (backward_) t.requires_grad_();
  track_grad(key, t);
  return t;
}

NamedTensors RefCase::params() {
  NamedTensors out;
  if (!file_.is_group("params")) return out;
  for (const std::string& name : file_.list_datasets("params")) out.emplace_back(name, param(name));
  return out;
}

void RefCase::load_params(nn::Module& module) {
  module.to(device_);  // parameters and buffers; load_parameters copies into them there
  NamedTensors values;
  if (file_.is_group("params"))
    for (const std::string& name : file_.list_datasets("params")) values.emplace_back(name, file_.read("params/" + name));
  nn::load_parameters(module, values);
  for (const auto& [name, p] : module.named_parameters()) track_grad("params/" + name, p);
}

void RefCase::track_grad(const std::string& key, const Tensor& t) {
  auto [it, fresh] = tracked_.emplace(key, t);
  HEED_CHECK(fresh || it->second.impl() == t.impl(),
             "reference '{}' (op {}): grads/{} is tracked for two different tensors", path_, op_, key);
}

void RefCase::out(const std::string& name, const Tensor& t) {
  HEED_CHECK(t.defined(), "reference '{}' (op {}): output '{}' is an undefined tensor", path_, op_, name);
  HEED_CHECK(outputs_.emplace(name, t).second, "reference '{}' (op {}): output '{}' registered twice", path_, op_,
             name);
}

std::map<std::string, Tensor> RefCase::grads() const {
  std::map<std::string, Tensor> out;
  for (const auto& [key, leaf] : tracked_) {
    const Tensor& g = leaf.grad();
    out.emplace(key, g.defined() ? g : zeros(leaf.shape(), leaf.dtype(), leaf.device()));
  }
  return out;
}

// ---- the registry ----------------------------------------------------------------

namespace {
// Function-local statics: safe to use from other files' static initialisers.
std::map<std::string, OpFn>& table() {
  static std::map<std::string, OpFn> ops;
  return ops;
}
std::vector<std::string>& problems() {
  static std::vector<std::string> list;
  return list;
}
}  // namespace

bool register_op(const std::string& name, OpFn fn) {
  if (!table().emplace(name, fn).second) problems().push_back("op '" + name + "' is registered twice");
  return true;
}

OpFn find_op(const std::string& name) {
  auto it = table().find(name);
  return it == table().end() ? nullptr : it->second;
}

std::vector<std::string> registered_ops() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  return names;
}

const std::vector<std::string>& registry_problems() { return problems(); }

}  // namespace heed::reference
