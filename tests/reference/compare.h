#pragma once
// The comparison rule of ../shared/reference/README.md, "Comparing": same
// shape; NaN and +-inf at the same places; every finite entry within
// |heed - ref| <= atol + rtol * |ref|; integers exactly.
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace heed::reference {

// What the comparisons of one file found, accumulated over its datasets.
struct Comparison {
  double worst = 0;        // max |a - e| / (atol + rtol |e|) over finite entries
  std::string worst_at;    // the dataset holding it, e.g. "grads/params/weight"
  std::vector<std::string> problems;  // one line per failed dataset
  bool ok() const { return problems.empty(); }
};

// Compares heed's `got` with the file's `want` (dataset `name`), adding to `c`.
void compare(const std::string& name, const Tensor& got, const Tensor& want, double rtol, double atol,
             Comparison& c);

}  // namespace heed::reference
