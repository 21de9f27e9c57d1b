#pragma once
// Settings of the CUDA matmul (cuBLAS). Available in every build: without
// CUDA the switch is kept but has nothing to act on.
namespace heed::cuda {

// TensorFloat-32 for float32 matmuls: inputs rounded to 10 mantissa bits
// inside the tensor cores, several times faster on Ampere and later, but only
// about 3 significant digits per product. Off by default, so float32 matmuls
// agree with the CPU to float32 rounding (what the reference tolerances
// assume). Turning it on affects every later float32 matmul on every device,
// from any thread; float64 matmuls never use it.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace heed::cuda
