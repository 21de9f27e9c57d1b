#pragma once
// Shapes and strides: plain vectors of int64, with the few rules every op shares.
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace heed {

using Shape = std::vector<int64_t>;

int64_t numel_of(const Shape& shape);
// Row-major strides (in elements) for a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);
// Maps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);
// NumPy broadcasting of two shapes; throws naming `op` and both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
std::string shape_str(const Shape& shape);

}  // namespace heed
