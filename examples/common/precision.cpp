#include "examples/common/precision.h"

#include <fmt/core.h>

#include "cuda/matmul.h"
#include "tensor/cpu/matmul.h"
#include "tensor/error.h"

namespace heed::examples {

Precision precision_from_flag(const std::string& flag, Device device) {
  Precision p;
  if (flag == "fp32") p = Precision::FP32;
  else if (flag == "tf32") p = Precision::TF32;
  else if (flag == "bf16-matmul") p = Precision::BF16Matmul;
  else if (flag == "bf16") p = Precision::BF16;
  else HEED_FAIL("--precision {}: expected fp32, tf32, bf16-matmul or bf16", flag);
  HEED_CHECK(p != Precision::TF32 || device.is_cuda(),
             "--precision tf32: TF32 is a mode of the GPU's tensor cores; on {} use fp32 or bf16-matmul (or --device "
             "cuda)",
             device.str());
  HEED_CHECK(p != Precision::BF16Matmul || device.is_cpu(),
             "--precision bf16-matmul: bf16 inputs to float32 matmuls are a mode of the CPU's matmul; on {} use tf32 "
             "(the tensor cores' float32 mode) or bf16",
             device.str());
  return p;
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16Matmul: return "bf16-matmul";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

std::unique_ptr<AutocastGuard> use_precision(Precision p, Device device) {
  if (device.is_cuda()) cuda::set_allow_tf32(p == Precision::TF32);
  if (device.is_cpu()) {
    cpu::set_allow_bf16_matmul(p == Precision::BF16Matmul);
    if (p == Precision::BF16Matmul && cpu::bf16_matmul_kernel() == "emulated")
      fmt::print(stderr, "--precision bf16-matmul: this CPU has no AVX512-BF16 instructions; the matmuls round their "
                         "inputs to bf16 as they would there, but run no faster than fp32\n");
  }
  if (p != Precision::BF16) return nullptr;
  if (device.is_cpu())
    fmt::print(stderr, "--precision bf16 on the CPU: mixed precision computes correctly but runs slower than fp32 "
                       "here (no native bfloat16 arithmetic on this path)\n");
  return std::make_unique<AutocastGuard>(DType::BFloat16);
}

}  // namespace heed::examples
