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

// ---- loading saved tensors ---------------------------------------------------

namespace {

// Whether a saved tensor must have its live counterpart's dtype (a checkpoint
// is restored exactly) or may have any (converted on copy).
enum class DTypes { Same, Converted };

// One way saved tensors fail to fit live ones. live and saved point into the
// lists given to match(): the live tensor (Missing, Undefined, Different) and
// the saved one (Undefined, Different, Unexpected).
struct Mismatch {
  enum class Kind { GivenTwice, Missing, Undefined, Different, Unexpected };
  Kind kind;
  std::string name;
  const Tensor* live = nullptr;
  const Tensor* saved = nullptr;
};

// The check itself: every live name given once, defined, of the live shape
// (and dtype), and no other name. In this order: names given twice, then the
// live names' problems in their order, then the unexpected names.
std::vector<Mismatch> match(const NamedTensors& live, const NamedTensors& saved, DTypes dtypes) {
  using Kind = Mismatch::Kind;
  std::vector<Mismatch> out;
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : saved)
    if (!given.emplace(name, &t).second) out.push_back({Kind::GivenTwice, name});
  std::set<std::string> known;
  for (const auto& [name, mine] : live) {
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      out.push_back({Kind::Missing, name, &mine});
      continue;
    }
    const Tensor& t = *it->second;
    if (!t.defined())
      out.push_back({Kind::Undefined, name, &mine, &t});
    else if (t.shape() != mine.shape() || (dtypes == DTypes::Same && t.dtype() != mine.dtype()))
      out.push_back({Kind::Different, name, &mine, &t});
  }
  for (const auto& [name, t] : saved)
    if (known.insert(name).second) out.push_back({Kind::Unexpected, name, nullptr, &t});  // once each
  return out;
}

// nn::load_parameters / load_state: dtypes are converted, and the message
// groups the names by problem ("missing: a, b; wrong shape: ...").
void load_into(Module& module, const NamedTensors& targets, const NamedTensors& values, const char* fn) {
  std::vector<std::string> twice, unexpected, missing, mismatched;
  for (const Mismatch& m : match(targets, values, DTypes::Converted)) {
    switch (m.kind) {
      case Mismatch::Kind::GivenTwice: twice.push_back(m.name); break;
      case Mismatch::Kind::Missing: missing.push_back(m.name); break;
      case Mismatch::Kind::Unexpected: unexpected.push_back(m.name); break;
      case Mismatch::Kind::Undefined:
      case Mismatch::Kind::Different:
        mismatched.push_back(fmt::format("{} (module {}, given {})", m.name, shape_str(m.live->shape()),
                                         m.saved->defined() ? shape_str(m.saved->shape()) : "undefined"));
        break;
    }
  }
  std::string problems;
  auto add = [&](const char* what, const std::vector<std::string>& names) {
    if (!names.empty()) problems += fmt::format("; {}: {}", what, fmt::join(names, ", "));
  };
  add("missing", missing);
  add("unexpected", unexpected);
  add("wrong shape", mismatched);
  add("given twice", twice);
  HEED_CHECK(problems.empty(), "{}: {} does not match the module's names{}", module.type_name(), fn, problems);
  copy_named_tensors(targets, values);
}
}  // namespace

void load_parameters(Module& module, const NamedTensors& values) {
  load_into(module, module.named_parameters(), values, "load_parameters");
}

void load_state(Module& module, const NamedTensors& values) {
  load_into(module, module_state(module), values, "load_state");
}

NamedTensors module_state(const Module& module) {
  NamedTensors all = module.named_parameters();
  for (auto& entry : module.named_buffers()) all.push_back(std::move(entry));
  return all;
}

void load_checked_state(Module& module, const NamedTensors& values) { copy_named_tensors(module_state(module), values); }

void compare_named_tensors(const char* what, const NamedTensors& live, const NamedTensors& saved,
                           std::vector<std::string>& problems) {
  for (const Mismatch& m : match(live, saved, DTypes::Same)) {
    switch (m.kind) {
      case Mismatch::Kind::GivenTwice: problems.push_back(fmt::format("{}: '{}' is given twice", what, m.name)); break;
      case Mismatch::Kind::Missing:
        problems.push_back(
            fmt::format("{}: missing '{}' ({} {})", what, m.name, shape_str(m.live->shape()), m.live->dtype()));
        break;
      case Mismatch::Kind::Undefined: problems.push_back(fmt::format("{}: '{}' is undefined", what, m.name)); break;
      case Mismatch::Kind::Different:
        problems.push_back(fmt::format("{}: '{}' is {} {} in the checkpoint, {} {} here", what, m.name,
                                       shape_str(m.saved->shape()), m.saved->dtype(), shape_str(m.live->shape()),
                                       m.live->dtype()));
        break;
      case Mismatch::Kind::Unexpected:
        problems.push_back(fmt::format("{}: unexpected '{}' (not in this {})", what, m.name, what));
        break;
    }
  }
}

void copy_named_tensors(const NamedTensors& targets, const NamedTensors& values) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : values) by_name.emplace(name, &t);
  NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    Tensor handle = target;  // shares the target's TensorImpl
    handle.copy_(*by_name.at(name));
  }
}

std::string count_problems(const std::vector<std::string>& problems) {
  return fmt::format("{} problem{}", problems.size(), problems.size() == 1 ? "" : "s");
}

std::string list_problems(const std::vector<std::string>& problems) {
  std::string list;
  for (const std::string& p : problems) list += "\n  - " + p;
  return list;
}

}  // namespace heed::nn
