#include "examples/common/precision.h"

#include <fmt/core.h>

#include "cuda/matmul.h"
#include "tensor/error.h"

namespace heed::examples {

Precision precision_from_flag(const std::string& flag, Device device) {
  Precision p;
  if (flag == "fp32") p = Precision::FP32;
  else if (flag == "tf32") p = Precision::TF32;
  else if (flag == "bf16") p = Precision::BF16;
  else HEED_FAIL("--precision {}: expected fp32, tf32 or bf16", flag);
  HEED_CHECK(p != Precision::TF32 || device.is_cuda(),
             "--precision tf32: TF32 is a mode of the GPU's tensor cores; on {} use fp32 (or --device cuda)",
             device.str());
  return p;
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

std::unique_ptr<AutocastGuard> use_precision(Precision p, Device device) {
  if (device.is_cuda()) cuda::set_allow_tf32(p == Precision::TF32);
  if (p != Precision::BF16) return nullptr;
  if (device.is_cpu())
    fmt::print(stderr, "--precision bf16 on the CPU: mixed precision computes correctly but runs slower than fp32 "
                       "here (no native bfloat16 arithmetic on this path)\n");
  return std::make_unique<AutocastGuard>(DType::BFloat16);
}

}  // namespace heed::examples
