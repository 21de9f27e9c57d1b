#pragma once
// Element types. float32 trains, float64 checks gradients, bfloat16 halves
// the memory and feeds the tensor cores (tensor/bfloat16.h: stored in 16 bits,
// computed in float32), int64 holds ids, bool and uint8 hold masks. Mixing
// dtypes in one op is an error, never a silent promotion (autocast, in
// tensor/autocast.h, inserts the casts explicitly).
#include <cstddef>
#include <cstdint>

#include "tensor/bfloat16.h"
#include "tensor/error.h"

namespace heed {

enum class DType { Float32, Float64, Int64, Bool, UInt8, BFloat16 };

inline constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    case DType::UInt8: return "uint8";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

inline constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
    case DType::UInt8: return 1;
    case DType::BFloat16: return 2;
  }
  return 0;
}

inline constexpr bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::BFloat16;
}

// The dtype a kernel computes and accumulates in: float32 for bfloat16 (a
// layer norm's saved mean and rstd are kept in it, for example), else t.
inline constexpr DType compute_dtype(DType t) { return t == DType::BFloat16 ? DType::Float32 : t; }

// The C++ type that stores each dtype. Bool is stored as one byte holding 0 or 1.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = DType::BFloat16; };

// Calls f(T{}) with T the storage type of `t`: the one switch every kernel uses.
template <class F>
decltype(auto) dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(int64_t{});
    case DType::Bool: return f(bool{});
    case DType::UInt8: return f(uint8_t{});
    case DType::BFloat16: return f(bfloat16{});
  }
  HEED_FAIL("unknown dtype {}", static_cast<int>(t));
}

// float32 and float64 only: kernels that compute bfloat16 in float32 take it
// apart before they get here, so a bfloat16 tensor reaching this is an error.
template <class F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default: HEED_FAIL("{}: expected a float32 or float64 tensor, got {}", op, dtype_name(t));
  }
}

// float32, float64, int64 and uint8: the dtypes a kernel adds into. Bool has
// no addition, and bfloat16, summed in float32, is widened before it gets
// here (or dispatched by the backend itself: cuda's dispatch_addable_or_bf16).
// `device` and `op` name the kernel in the error ("cpu scatter_add: ...").
template <class F>
decltype(auto) dispatch_addable(DType t, const char* device, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(int64_t{});
    case DType::UInt8: return f(uint8_t{});
    default: HEED_FAIL("{} {}: cannot accumulate into a {} tensor", device, op, dtype_name(t));
  }
}

}  // namespace heed

template <>
struct fmt::formatter<heed::DType> : fmt::formatter<const char*> {
  template <class Ctx>
  auto format(heed::DType t, Ctx& ctx) const {
    return fmt::formatter<const char*>::format(heed::dtype_name(t), ctx);
  }
};
