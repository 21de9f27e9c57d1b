#pragma once
// Settings of the CPU matmul (heed::cpu::gemm), beside cuda/matmul.h's.
#include <string>

namespace heed::cpu {

// bfloat16 inputs for float32 matmuls: each operand rounded to bf16 (8
// significant bits, to nearest, ties to even), the products summed in float32.
// On a CPU with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake, Sapphire
// Rapids and later) the products run on its bf16 dot-product instructions,
// twice the float32 FMA's rate; elsewhere the same rounding is applied to
// copies of the operands and the float32 kernel runs them, so a run means the
// same everywhere (but is no faster). PyTorch's counterpart is
// torch.backends.mkldnn.matmul.fp32_precision = "bf16".
//
// Off by default, so float32 matmuls agree with float32 arithmetic (what the
// reference tolerances and gradient checks assume). Turning it on affects
// every later float32 matmul on the CPU, from any thread: Linear, attention's
// composed products, a GPT's tied head; not the fused attention kernel or
// float64. A matmul of bfloat16 tensors (computed on float32 copies) runs on it
// too: its inputs are bf16 already, so only the order of the float32 sums
// changes. Results stay the same for any number of threads; the
// native and emulated kernels round differently (the native one flushes
// subnormal bf16 inputs to zero and adds each pair of products its own way).
void set_allow_bf16_matmul(bool allow);
bool allow_bf16_matmul();

// Where bf16 matmuls run: "avx512bf16" (the CPU's instructions) or "emulated".
std::string bf16_matmul_kernel();

}  // namespace heed::cpu
