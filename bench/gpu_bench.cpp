// heed's CUDA kernels against the hardware and cuBLAS, as JSON lines
// (bench/gpu_torch.py measures PyTorch the same way, bench/run_gpu.sh runs both
// and writes bench/RESULTS.md):
//
//   gpu_bench [--device N] [--section all|matmul|rows|attention] [--peak-gbs X] [--quick]
//
// device  the GPU: name, SM count, memory, and its peak memory bandwidth
//         (2 x memory clock x bus width, or --peak-gbs).
// matmul  heed::matmul against cublasSgemm / cublasSgemmStridedBatched called
//         directly on the same buffers: square C = A B for n = 1024 .. 8192, a
//         Linear layer's x W^T, and the two products of attention, scores =
//         q k^T [B*H, T, d] x [B*H, d, T] and out = p v. float32; where heed has
//         the TF32 switch (cuda/matmul.h) also TF32 rows, cuBLAS then in
//         CUBLAS_TF32_TENSOR_OP_MATH.
// rows    the row kernels on large rows: softmax [4096, 32768], layer_norm
//         [16384, 4096], cross_entropy [8192, 32768] (logits) forward, and
//         forward + backward through autograd. Reported as achieved GB/s of the
//         least traffic the op needs (forward: read x, write y; backward: read
//         y or x and dy, write dx; cross_entropy forward reads the logits, its
//         backward reads them and writes their gradient), against the peak.
// attention  the fused attention kernel (nn::scaled_dot_product_attention,
//         AttentionImpl::Fused), forward + backward through autograd, q, k, v
//         [B 4, H 16, T, d] for d 64 and 128, T 1024 .. 8192, causal and not,
//         in bfloat16, float32 and float32 with the TF32 switch; TFLOP/s
//         counted as FlashAttention does (forward 4 B H T^2 d, halved when
//         causal, backward 2.5x the forward).
//
// Timing: cudaEvents on the default stream around n calls after warm-up, n
// chosen so a measurement lasts about 0.2 s; the figure is the mean per call,
// so heed's host-side work (dispatch, autograd, allocation) counts wherever the
// GPU would wait for it. A measurement that fails (a kernel not there yet)
// prints a line with "error" and the others go on.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "tensor/grad_mode.h"
#include "cuda/matmul.h"
#include "nn/attention.h"
#include "nn/loss.h"
#include "tensor/ops.h"
#include "tensor/random.h"


namespace {

using heed::Tensor;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(fmt::format("{}: {} ({})", what, cudaGetErrorName(status), cudaGetErrorString(status)));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(fmt::format("{}: cuBLAS status {}", what, static_cast<int>(status)));
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

struct Args {
  int device = 0;
  std::string section = "all";
  double peak_gbs = 0;  // 0: from the device's memory clock and bus width
  bool quick = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--quick") {
      a.quick = true;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error("missing value after " + key);
    const std::string val = argv[++i];
    if (key == "--device") a.device = std::stoi(val);
    else if (key == "--section") a.section = val;
    else if (key == "--peak-gbs") a.peak_gbs = std::stod(val);
    else throw std::runtime_error("unknown option " + key);
  }
  if (a.section != "all" && a.section != "matmul" && a.section != "rows" && a.section != "attention")
    throw std::runtime_error("--section must be all, matmul, rows or attention, got " + a.section);
  return a;
}

// Mean milliseconds per call of f, timed with cudaEvents on the default stream.
class Timer {
 public:
  explicit Timer(bool quick) : target_ms_(quick ? 60.0 : 200.0) {
    check(cudaEventCreate(&start_), "cudaEventCreate");
    check(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  double ms(const std::function<void()>& f) {
    f();  // warm-up: kernels loaded, the allocator's cache filled
    f();
    check(cudaDeviceSynchronize(), "warm-up");
    const double one = timed(f, 1);
    const int n = std::clamp(static_cast<int>(target_ms_ / std::max(one, 1e-3)), 3, 500);
    return timed(f, n);
  }

 private:
  double timed(const std::function<void()>& f, int n) {
    check(cudaEventRecord(start_, 0), "cudaEventRecord");
    for (int i = 0; i < n; ++i) f();
    check(cudaEventRecord(stop_, 0), "cudaEventRecord");
    check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
    return static_cast<double>(ms) / n;
  }
  double target_ms_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Random float32 values on the device: drawn there when heed can, else on the
// host and copied (the values do not matter, only that they are not all zero).
Tensor random_on(const heed::Shape& shape, heed::Device device, heed::Generator& gen) {
  try {
    return heed::randn(shape, &gen, heed::DType::Float32, device);
  } catch (const heed::Error&) {
    return heed::randn(shape, &gen, heed::DType::Float32, heed::kCPU).to(device);
  }
}

void device_info(const Args& a) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, a.device), "cudaGetDeviceProperties");
  int clock_khz = 0, bus_bits = 0, runtime = 0, driver = 0;
  check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, a.device), "memory clock");
  check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, a.device), "bus width");
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  // Double data rate: two transfers per clock over the whole bus.
  const double computed = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
  std::printf(
      "{\"impl\": \"heed\", \"kind\": \"device\", \"name\": \"%s\", \"sm_count\": %d, \"cc\": \"%d.%d\", "
      "\"memory_gib\": %.1f, \"memory_clock_mhz\": %.0f, \"bus_bits\": %d, \"peak_gbs_computed\": %.0f, "
      "\"peak_gbs\": %.0f, \"peak_from\": \"%s\", \"cuda_runtime\": %d, \"driver\": %d, \"tf32_switch\": %s}\n",
      json_escape(prop.name).c_str(), prop.multiProcessorCount, prop.major, prop.minor,
      static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024 * 1024), clock_khz / 1e3, bus_bits, computed,
      a.peak_gbs > 0 ? a.peak_gbs : computed, a.peak_gbs > 0 ? "--peak-gbs" : "memory clock x bus width", runtime,
      driver, "true");
  std::fflush(stdout);
}

// ---- matmul ------------------------------------------------------------------

// One product, row-major: C [batch, M, N] = A [batch, M, K] x op(B), where B is
// [batch, K, N], or [batch, N, K] read transposed when b_transposed.
struct MatmulCase {
  std::string name;
  int64_t batch, M, N, K;
  bool b_transposed;
};

void set_tf32(bool on) { heed::cuda::set_allow_tf32(on); }

void matmul_case(const MatmulCase& c, bool tf32, heed::Device device, cublasHandle_t handle, Timer& timer,
                 heed::Generator& gen) {
  const double flops = 2.0 * static_cast<double>(c.batch) * c.M * c.N * c.K;
  std::string prefix = fmt::format(
      "{{\"impl\": \"heed\", \"kind\": \"matmul\", \"name\": \"{}\", \"batch\": {}, \"m\": {}, \"n\": {}, \"k\": {}, "
      "\"math\": \"{}\"",
      c.name, c.batch, c.M, c.N, c.K, tf32 ? "tf32" : "fp32");
  try {
    heed::NoGradGuard no_grad;
    const bool batched = c.batch > 1;
    const heed::Shape a_shape = batched ? heed::Shape{c.batch, c.M, c.K} : heed::Shape{c.M, c.K};
    const heed::Shape b_shape = c.b_transposed ? (batched ? heed::Shape{c.batch, c.N, c.K} : heed::Shape{c.N, c.K})
                                               : (batched ? heed::Shape{c.batch, c.K, c.N} : heed::Shape{c.K, c.N});
    Tensor a = random_on(a_shape, device, gen);
    Tensor b = random_on(b_shape, device, gen);
    Tensor b_op = c.b_transposed ? b.transpose(-2, -1) : b;
    Tensor out = heed::empty(batched ? heed::Shape{c.batch, c.M, c.N} : heed::Shape{c.M, c.N}, heed::DType::Float32,
                             device);

    set_tf32(tf32);
    const double heed_ms = timer.ms([&] { Tensor r = heed::matmul(a, b_op); });

    // cuBLAS is column-major: row-major C = A op(B) is column-major C^T = op(B)^T A^T.
    check(cublasSetMathMode(handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    const float one = 1.0f, zero = 0.0f;
    const auto* pa = static_cast<const float*>(a.raw_data());
    const auto* pb = static_cast<const float*>(b.raw_data());
    auto* pc = static_cast<float*>(out.raw_data());
    const cublasOperation_t op_b = c.b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int ldb = static_cast<int>(c.b_transposed ? c.K : c.N);
    const int M = static_cast<int>(c.M), N = static_cast<int>(c.N), K = static_cast<int>(c.K);
    const double cublas_ms = timer.ms([&] {
      if (!batched) {
        check(cublasSgemm(handle, op_b, CUBLAS_OP_N, N, M, K, &one, pb, ldb, pa, K, &zero, pc, N), "cublasSgemm");
      } else {
        check(cublasSgemmStridedBatched(handle, op_b, CUBLAS_OP_N, N, M, K, &one, pb, ldb, c.K * c.N, pa, K,
                                        c.M * c.K, &zero, pc, N, c.M * c.N, static_cast<int>(c.batch)),
              "cublasSgemmStridedBatched");
      }
    });
    // The two agree (a wrong layout above would make the comparison meaningless):
    // the largest difference relative to the largest value; -1 when it cannot be computed.
    double rel_diff = -1;
    try {
      Tensor r = heed::matmul(a, b_op);
      const double diff = heed::amax(heed::abs(heed::sub(r, out))).item<double>();
      const double scale = heed::amax(heed::abs(out)).item<double>();
      rel_diff = scale > 0 ? diff / scale : diff;
    } catch (const std::exception&) {
    }
    std::printf("%s, \"ms\": %.4f, \"tflops\": %.2f, \"cublas_ms\": %.4f, \"cublas_tflops\": %.2f, "
                "\"max_rel_diff\": %.2e}\n",
                prefix.c_str(), heed_ms, flops / heed_ms / 1e9, cublas_ms, flops / cublas_ms / 1e9, rel_diff);
  } catch (const std::exception& e) {
    std::printf("%s, \"error\": \"%s\"}\n", prefix.c_str(), json_escape(e.what()).c_str());
  }
  set_tf32(false);
  std::fflush(stdout);
}

void matmul_section(const Args& a, heed::Device device, heed::Generator& gen) {
  cublasHandle_t handle = nullptr;
  check(cublasCreate(&handle), "cublasCreate");
  Timer timer(a.quick);
  std::vector<MatmulCase> cases;
  for (int64_t n : {1024, 2048, 4096, 8192}) cases.push_back({fmt::format("square {}", n), 1, n, n, n, false});
  // A Linear layer: x [B*T, 768] W^T with W [3072, 768] (GPT-2 small's first feed-forward layer, 8 x 1024 tokens).
  cases.push_back({"linear 8192x768 W[3072,768]^T", 1, 8192, 3072, 768, true});
  // Attention with B*H = 8*12 heads, T = 1024, d = 64: scores = q k^T, then out = p v.
  cases.push_back({"attention q k^T (96 x 1024x64 . 64x1024)", 96, 1024, 1024, 64, true});
  cases.push_back({"attention p v (96 x 1024x1024 . 1024x64)", 96, 1024, 64, 1024, false});
  // Longer context, wider heads: B*H = 4*16, T = 2048, d = 128.
  cases.push_back({"attention q k^T (64 x 2048x128 . 128x2048)", 64, 2048, 2048, 128, true});
  cases.push_back({"attention p v (64 x 2048x2048 . 2048x128)", 64, 2048, 128, 2048, false});
  for (const MatmulCase& c : cases) {
    if (a.quick && c.M * c.N * c.K * c.batch > int64_t{4096} * 4096 * 4096) continue;
    matmul_case(c, false, device, handle, timer, gen);
  }
  for (const MatmulCase& c : cases)
    if (c.name == "square 4096" || c.name == "square 8192" || c.name.rfind("attention q k^T (96", 0) == 0)
      matmul_case(c, true, device, handle, timer, gen);
  cublasDestroy(handle);
}

// ---- fused attention -------------------------------------------------------------

void attention_case(const std::string& dtype_name, int64_t d, int64_t T, bool causal, heed::Device device, Timer& timer,
                    heed::Generator& gen) {
  const int64_t B = 4, H = 16;
  const bool tf32 = dtype_name == "tf32";
  const heed::DType dtype = dtype_name == "bf16" ? heed::DType::BFloat16 : heed::DType::Float32;
  const double flops = 3.5 * 4.0 * B * H * static_cast<double>(T) * T * d * (causal ? 0.5 : 1.0);
  std::string prefix =
      fmt::format("{{\"impl\": \"heed\", \"kind\": \"attention\", \"dtype\": \"{}\", \"B\": {}, \"H\": {}, \"T\": {}, "
                  "\"d\": {}, \"causal\": {}",
                  dtype_name, B, H, T, d, causal ? "true" : "false");
  try {
    auto leaf = [&] { return heed::randn({B, H, T, d}, &gen, heed::DType::Float32, device).to(dtype).requires_grad_(); };
    Tensor q = leaf(), k = leaf(), v = leaf();
    Tensor g = heed::randn({B, H, T, d}, &gen, heed::DType::Float32, device).to(dtype);
    heed::nn::AttentionOptions o;
    o.causal = causal;
    o.impl = heed::nn::AttentionImpl::Fused;
    set_tf32(tf32);
    const double ms = timer.ms([&] {
      for (Tensor* t : {&q, &k, &v}) t->zero_grad();
      heed::nn::scaled_dot_product_attention(q, k, v, o).output.backward(g);
    });
    set_tf32(false);
    std::printf("%s, \"ms\": %.4f, \"tflops\": %.2f}\n", prefix.c_str(), ms, flops / ms / 1e9);
  } catch (const std::exception& e) {
    set_tf32(false);
    std::printf("%s, \"error\": \"%s\"}\n", prefix.c_str(), json_escape(e.what()).c_str());
  }
  std::fflush(stdout);
}

void attention_section(const Args& a, heed::Device device, heed::Generator& gen) {
  Timer timer(a.quick);
  for (const char* dtype : {"bf16", "fp32", "tf32"})
    for (int64_t d : {64, 128})
      for (int64_t T : {1024, 2048, 4096, 8192})
        for (bool causal : {false, true}) {
          if (a.quick && T > 2048) continue;
          attention_case(dtype, d, T, causal, device, timer, gen);
        }
}

// ---- row kernels ---------------------------------------------------------------

struct RowCase {
  std::string op;
  int64_t rows, cols;
  double fwd_bytes, bwd_bytes;  // the least traffic, bytes
};

void row_case(const RowCase& c, heed::Device device, Timer& timer, heed::Generator& gen) {
  std::string prefix =
      fmt::format("{{\"impl\": \"heed\", \"kind\": \"row\", \"op\": \"{}\", \"rows\": {}, \"cols\": {}, "
                  "\"fwd_bytes\": {:.0f}, \"bwd_bytes\": {:.0f}",
                  c.op, c.rows, c.cols, c.fwd_bytes, c.bwd_bytes);
  try {
    Tensor x = random_on({c.rows, c.cols}, device, gen);
    Tensor dy = random_on({c.rows, c.cols}, device, gen);
    Tensor w = heed::ones({c.cols}, heed::DType::Float32, device);
    Tensor bias = heed::zeros({c.cols}, heed::DType::Float32, device);
    Tensor target;
    if (c.op == "cross_entropy") {
      std::vector<int64_t> t(static_cast<size_t>(c.rows));
      for (int64_t i = 0; i < c.rows; ++i) t[static_cast<size_t>(i)] = (i * 7919) % c.cols;
      target = heed::from_vector(t, {c.rows}).to(device);
    }
    auto forward = [&](const Tensor& in, const Tensor& wt, const Tensor& bs) -> Tensor {
      if (c.op == "softmax") return heed::softmax(in, -1);
      if (c.op == "layer_norm") return heed::layer_norm(in, wt, bs, 1e-5);
      return heed::nn::cross_entropy(in, target);
    };
    double fwd_ms = 0;
    {
      heed::NoGradGuard no_grad;
      fwd_ms = timer.ms([&] { Tensor y = forward(x, w, bias); });
    }
    Tensor xg = x.detach().requires_grad_();
    Tensor wg = w.detach().requires_grad_();
    Tensor bg = bias.detach().requires_grad_();
    const double fwdbwd_ms = timer.ms([&] {
      Tensor y = forward(xg, wg, bg);
      if (c.op == "cross_entropy")
        y.backward();
      else
        y.backward(dy);
      xg.zero_grad();
      wg.zero_grad();
      bg.zero_grad();
    });
    const double bwd_ms = std::max(fwdbwd_ms - fwd_ms, 1e-6);
    std::printf("%s, \"fwd_ms\": %.4f, \"fwdbwd_ms\": %.4f, \"fwd_gbs\": %.1f, \"bwd_gbs\": %.1f}\n", prefix.c_str(),
                fwd_ms, fwdbwd_ms, c.fwd_bytes / fwd_ms / 1e6, c.bwd_bytes / bwd_ms / 1e6);
  } catch (const std::exception& e) {
    std::printf("%s, \"error\": \"%s\"}\n", prefix.c_str(), json_escape(e.what()).c_str());
  }
  std::fflush(stdout);
}

void rows_section(const Args& a, heed::Device device, heed::Generator& gen) {
  Timer timer(a.quick);
  const double f = 4;  // bytes per float32
  auto elems = [](int64_t r, int64_t c) { return static_cast<double>(r) * static_cast<double>(c); };
  const int64_t q = a.quick ? 4 : 1;  // --quick: a quarter of the rows
  std::vector<RowCase> cases = {
      {"softmax", 4096 / q, 32768, 2 * f * elems(4096 / q, 32768), 3 * f * elems(4096 / q, 32768)},
      {"layer_norm", 16384 / q, 4096, 2 * f * elems(16384 / q, 4096), 3 * f * elems(16384 / q, 4096)},
      {"cross_entropy", 8192 / q, 32768, f * elems(8192 / q, 32768), 2 * f * elems(8192 / q, 32768)},
  };
  for (const RowCase& c : cases) row_case(c, device, timer, gen);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const heed::Device device(heed::DeviceType::CUDA, a.device);
    if (heed::device_count(heed::DeviceType::CUDA) <= a.device)
      throw std::runtime_error(fmt::format("no CUDA device {} here ({} visible)", a.device,
                                           heed::device_count(heed::DeviceType::CUDA)));
    check(cudaSetDevice(a.device), "cudaSetDevice");
    device_info(a);
    heed::Generator gen(7);
    if (a.section == "all" || a.section == "matmul") matmul_section(a, device, gen);
    if (a.section == "all" || a.section == "rows") rows_section(a, device, gen);
    if (a.section == "all" || a.section == "attention") attention_section(a, device, gen);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
}
