#pragma once
// ModuleList: numbered children ("0", "1", ...), as torch.nn.ModuleList, so a
// stack of layers gets the names encoder.layers.0.*, encoder.layers.1.*, ...
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/error.h"

namespace heed::nn {

template <class M>
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}

  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    items_.push_back(register_module(std::to_string(items_.size()), std::move(module)));
    return items_.back();
  }
  size_t size() const { return items_.size(); }
  M& operator[](size_t i) const {
    HEED_CHECK(i < items_.size(), "ModuleList: index {} is out of range for {} modules", i, items_.size());
    return *items_[i];
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace heed::nn
