#include "autograd/function.h"

#include <cxxabi.h>

#include <cstdlib>

namespace heed {

std::string demangle(const char* mangled) {
  int status = 0;
  char* plain = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && plain ? plain : mangled;
  std::free(plain);
  return out;
}

void AutogradContext::save_for_backward(const TensorList& tensors) {
  saved_.clear();
  for (const Tensor& t : tensors) saved_.emplace_back(t);
}

TensorList AutogradContext::saved() const {
  TensorList out;
  for (const SavedTensor& s : saved_) out.push_back(s.unpack(name.c_str()));
  return out;
}

}  // namespace heed
