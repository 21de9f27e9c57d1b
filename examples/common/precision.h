#pragma once
// The programs' --precision flag, as PyTorch users choose it:
//   fp32  every op in float32 (the default);
//   tf32  float32 tensors, matmuls on the GPU's tensor cores with TF32
//         inputs (cuda::set_allow_tf32); a CUDA device is required;
//   bf16-matmul  float32 tensors, matmuls with bf16 inputs and float32 sums
//         on the CPU (cpu::set_allow_bf16_matmul): the AVX512-BF16 dot
//         products, twice the float32 FMA rate, where the CPU has them
//         (emulated, no faster, where not); a CPU device is required;
//   bf16  mixed precision: the run's forward passes under an AutocastGuard
//         (tensor/autocast.h), float32 master weights and optimizer state.
//         On the CPU it computes correctly but more slowly than fp32 (the
//         CPU's bfloat16 kernels widen to float32; they exist so that the
//         policy can be studied and tested anywhere), and says so.
// The choice is stored in the checkpoint's configuration ("precision") and a
// resumed run uses it again.
#include <memory>
#include <string>

#include "tensor/autocast.h"
#include "tensor/device.h"

namespace heed::examples {

enum class Precision { FP32, TF32, BF16Matmul, BF16 };

// "fp32", "tf32", "bf16-matmul" or "bf16"; throws heed::Error starting
// "--precision <flag>:" for anything else, for tf32 on a device other than
// CUDA and for bf16-matmul on one other than the CPU.
Precision precision_from_flag(const std::string& flag, Device device);
const char* precision_name(Precision p);

// Sets what the precision needs for the rest of the run (the TF32 and bf16
// matmul switches) and returns the guard that keeps bf16's autocast on while
// it lives (null for the others).
std::unique_ptr<AutocastGuard> use_precision(Precision p, Device device);

}  // namespace heed::examples
