#include "nn/module.h"

#include "tensor/grad_mode.h"
#include "tensor/tensor_impl.h"

#include <map>
#include <set>

#include <fmt/format.h>

namespace heed::nn {

void Module::check_new_name(const std::string& name) const {
  HEED_CHECK(!name.empty() && name.find('.') == std::string::npos,
             "{}: invalid name '{}' (names must be non-empty and contain no '.')", type_name_, name);
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry->first == name) return true;
    return false;
  };
  bool child = false;
  for (const auto& c : children_) child = child || c.first == name;
  HEED_CHECK(!taken(params_) && !taken(buffers_) && !child, "{}: the name '{}' is already registered", type_name_,
             name);
}

Tensor& Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name);
  HEED_CHECK(value.defined(), "{}: parameter '{}' is an undefined tensor", type_name_, name);
  HEED_CHECK(is_floating(value.dtype()), "{}: parameter '{}' must be a float dtype (float32, float64 or bfloat16), got {}", type_name_, name,
             value.dtype());
  // A parameter is a leaf of its own, whatever made its initial values.
  Tensor leaf = value.detach();
  if (requires_grad) leaf.requires_grad_();
  params_.push_back(std::make_unique<std::pair<std::string, Tensor>>(name, leaf));
  return params_.back()->second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  HEED_CHECK(value.defined(), "{}: buffer '{}' is an undefined tensor", type_name_, name);
  buffers_.push_back(std::make_unique<std::pair<std::string, Tensor>>(name, value.detach()));
  return buffers_.back()->second;
}

void Module::collect(NamedTensors& out, const std::string& prefix, bool params, bool recurse) const {
  for (const auto& entry : params ? params_ : buffers_) out.emplace_back(prefix + entry->first, entry->second);
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(out, prefix + name + ".", params, true);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect(out, "", true, recurse);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect(out, "", false, recurse);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  std::vector<std::pair<std::string, Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [path, m] = stack.back();
    stack.pop_back();
    out.emplace_back(path, m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      stack.emplace_back(path.empty() ? it->first : path + "." + it->first, it->second.get());
  }
  return out;
}

TensorList Module::parameters(bool recurse) const {
  TensorList out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  for (auto& [path, m] : named_modules()) m->training_ = on;
}

void Module::zero_grad() {
  for (const Tensor& t : parameters()) t.zero_grad();
}

void Module::apply(const std::function<void(const std::string&, Module&)>& fn) {
  for (auto& [path, m] : named_modules()) fn(path, *m);
}

namespace {
// Replaces the data behind `t`'s handle, so every copy of the handle (the
// module's member, an optimizer's list) sees the moved tensor.
void replace_data(Tensor& t, const Tensor& moved) {
  if (moved.impl() == t.impl()) return;
  TensorImpl& dst = *t.impl();
  dst.storage = moved.impl()->storage;
  dst.shape = moved.shape();
  dst.strides = moved.strides();
  dst.offset = moved.offset();
  dst.dtype = moved.dtype();
  if (dst.autograd) dst.autograd->grad = Tensor();
}
}  // namespace

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (auto& [path, m] : named_modules()) {
    for (auto& e : m->params_) replace_data(e->second, to_device(e->second.detach(), device));
    for (auto& e : m->buffers_) replace_data(e->second, to_device(e->second, device));
  }
}

void Module::to(DType dtype) {
  NoGradGuard no_grad;
  for (auto& [path, m] : named_modules()) {
    for (auto& e : m->params_) replace_data(e->second, to_dtype(e->second.detach(), dtype));
    for (auto& e : m->buffers_)
      if (is_floating(e->second.dtype())) replace_data(e->second, to_dtype(e->second, dtype));
  }
}

namespace {
// Checks every name and shape first, so a bad load changes nothing.
void load_into(Module& module, const NamedTensors& targets, const NamedTensors& values, const char* fn) {
  std::map<std::string, const Tensor*> given;
  std::vector<std::string> duplicated, unexpected, missing, mismatched;
  for (const auto& [name, value] : values) {
    if (!given.emplace(name, &value).second) duplicated.push_back(name);
  }
  std::map<std::string, const Tensor*> wanted;
  for (const auto& [name, target] : targets) wanted.emplace(name, &target);
  for (const auto& [name, value] : given) {
    auto it = wanted.find(name);
    if (it == wanted.end()) {
      unexpected.push_back(name);
    } else if (!value->defined() || value->shape() != it->second->shape()) {
      mismatched.push_back(fmt::format("{} (module {}, given {})", name, shape_str(it->second->shape()),
                                       value->defined() ? shape_str(value->shape()) : "undefined"));
    }
  }
  for (const auto& [name, target] : targets)
    if (given.count(name) == 0) missing.push_back(name);
  std::string problems;
  auto add = [&](const char* what, const std::vector<std::string>& names) {
    if (!names.empty()) problems += fmt::format("; {}: {}", what, fmt::join(names, ", "));
  };
  add("missing", missing);
  add("unexpected", unexpected);
  add("wrong shape", mismatched);
  add("given twice", duplicated);
  HEED_CHECK(problems.empty(), "{}: {} does not match the module's names{}", module.type_name(), fn, problems);
  NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    Tensor handle = target;  // shares the module's TensorImpl
    handle.copy_(*given.at(name));
  }
}
}  // namespace

void load_parameters(Module& module, const NamedTensors& values) {
  load_into(module, module.named_parameters(), values, "load_parameters");
}

void compare_named_tensors(const char* what, const nn::NamedTensors& live, const nn::NamedTensors& saved,
                     std::vector<std::string>& problems) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : saved)
    if (!given.emplace(name, &t).second) problems.push_back(fmt::format("{}: '{}' is given twice", what, name));
  std::set<std::string> known;
  for (const auto& [name, mine] : live) {
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      problems.push_back(fmt::format("{}: missing '{}' ({} {})", what, name, shape_str(mine.shape()), mine.dtype()));
      continue;
    }
    const Tensor& t = *it->second;
    if (!t.defined())
      problems.push_back(fmt::format("{}: '{}' is undefined", what, name));
    else if (t.shape() != mine.shape() || t.dtype() != mine.dtype())
      problems.push_back(fmt::format("{}: '{}' is {} {} in the checkpoint, {} {} here", what, name, shape_str(t.shape()),
                                     t.dtype(), shape_str(mine.shape()), mine.dtype()));
  }
  for (const auto& [name, t] : saved)
    if (!known.count(name)) problems.push_back(fmt::format("{}: unexpected '{}' (not in this {})", what, name, what));
}

void load_state(Module& module, const NamedTensors& values) {
  NamedTensors targets = module.named_parameters();
  for (auto& entry : module.named_buffers()) targets.push_back(entry);
  load_into(module, targets, values, "load_state");
}

}  // namespace heed::nn
