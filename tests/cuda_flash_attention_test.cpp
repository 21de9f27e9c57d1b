// The CUDA fused attention kernels (Backend::attention_forward and
// attention_backward, cuda/attention.cu), called directly on random inputs
// and checked against the contract of tensor/backend.h computed here in
// double: scores, the pattern (AttentionPatternView::masked on the CPU copies
// of the mask tensors), softmax, dropout (attention_dropout_keep) and the
// backward formulas. Every case runs on float32, float64 and bfloat16, on the
// SIMT kernels (HEED_CUDA_ATTENTION=simt) and on the kernels chosen by default
// (tensor cores for bfloat16 at head dims 64 and 128), and on float32 with
// TF32 allowed. Where the CPU backend has the kernels, the GPU's results are
// also compared with the CPU's. Skipped without a GPU.
//
// Tolerances: float32 1e-4, float64 1e-10 (relative to each element plus the
// tensor's largest magnitude); bfloat16 inputs are exact in float, so a
// bfloat16 result is the exact one rounded (2^-8), and the tensor-core path
// rounds P and dS to bfloat16 on the way (2^-6); TF32 products carry about
// 3 digits (1e-2).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/matmul.h"
#include "tensor/attention_args.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tests/test_util.h"
#include "tests/test_devices.h"

using namespace heed;
using namespace heed::test;

namespace {

const Backend& cpu() { return backend(DeviceType::CPU); }
const Backend& gpu() { return backend(DeviceType::CUDA); }

constexpr double kInf = std::numeric_limits<double>::infinity();

// v rounded to what `dtype` holds.
double in_dtype(double v, DType dtype) {
  if (dtype == DType::Float32) return static_cast<float>(v);
  if (dtype == DType::BFloat16) return static_cast<float>(bfloat16(static_cast<float>(v)));
  return v;
}

// n values uniform in [-r, r], representable in `dtype`.
std::vector<double> random_values(int64_t n, uint32_t seed, double r, DType dtype) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-r, r);
  std::vector<double> out(static_cast<size_t>(n));
  for (double& x : out) x = in_dtype(u(gen), dtype);
  return out;
}

// The raw bytes of a GPU tensor (for bit-for-bit comparisons).
std::vector<unsigned char> bytes_of(const Tensor& t_gpu) {
  Tensor t = empty(t_gpu.shape(), t_gpu.dtype());
  gpu().copy(t_gpu, t);
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  return std::vector<unsigned char>(p, p + t.numel() * static_cast<int64_t>(dtype_size(t.dtype())));
}

// Sets an environment variable for the guard's lifetime.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~EnvGuard() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

class Tf32Guard {
 public:
  explicit Tf32Guard(bool on) : old_(cuda::allow_tf32()) { cuda::set_allow_tf32(on); }
  ~Tf32Guard() { cuda::set_allow_tf32(old_); }

 private:
  bool old_;
};

// One attention problem: sizes, the pattern (as CPU tensors) and the layout of q, k, v.
struct Case {
  std::string name;
  int64_t B = 2, Hq = 2, Hkv = 2, T = 16, S = 16, d = 32, dv = 32;
  bool causal = false;
  int64_t window = 0;
  std::vector<int64_t> globals;  // global key positions
  int64_t block = 0;             // > 0: a random block layout (diagonal blocks kept)
  bool broadcast_mask = false;   // a random [1, 1, T, S] mask expanded to [B, Hq, T, S]
  bool masked_rows = false;      // a [B, 1, T, S] mask hiding every key of some rows
  bool key_padding = false;      // the last keys of batch 1 padded (a transposed [S, B] tensor)
  double dropout = 0;
  bool transposed_q = false;  // q a [B, T, Hq, d] tensor viewed as [B, Hq, T, d]
  bool strided_kv = false;    // k, v narrowed from a longer cache [B, Hkv, S + 7, d]
  bool offset_q = false;      // q narrowed from [B, Hq, T, d + 1] at column 1: rows not 16-byte aligned
};

// The pattern tensors of a case, on the CPU.
AttentionArgs args_of(const Case& c) {
  AttentionArgs a;
  a.scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  a.causal = c.causal;
  a.window = c.window;
  if (!c.globals.empty()) {
    std::vector<bool> g(static_cast<size_t>(c.S), false);
    for (int64_t p : c.globals) g[static_cast<size_t>(p)] = true;
    a.global = host_tensor({c.S}, DType::Bool, [&](int64_t i) { return g[static_cast<size_t>(i)] ? 1.0 : 0.0; });
  }
  if (c.block > 0) {
    const int64_t rows = (c.T + c.block - 1) / c.block, cols = (c.S + c.block - 1) / c.block;
    const std::vector<double> r = random_values(rows * cols, 7, 1, DType::Float64);
    a.layout = host_tensor({rows, cols}, DType::Bool, [&](int64_t i) {
      return (i / cols == i % cols || r[static_cast<size_t>(i)] > 0) ? 1.0 : 0.0;
    });
    a.block = c.block;
  }
  if (c.broadcast_mask) {
    const std::vector<double> r = random_values(c.T * c.S, 11, 1, DType::Float64);
    a.mask = host_tensor({1, 1, c.T, c.S}, DType::Bool, [&](int64_t i) { return r[static_cast<size_t>(i)] > 0.4 ? 1.0 : 0.0; })
                 .expand({c.B, c.Hq, c.T, c.S});
  } else if (c.masked_rows) {
    // Batch 0: rows 0 and 5 see no key; batch 1: row 2 sees only key 1.
    a.mask = host_tensor({c.B, 1, c.T, c.S}, DType::Bool,
                         [&](int64_t n) {
                           const int64_t b = n / (c.T * c.S), i = (n / c.S) % c.T, j = n % c.S;
                           if (b == 0) return (i == 0 || i == 5) ? 1.0 : 0.0;
                           return (i == 2 && j != 1) ? 1.0 : 0.0;
                         })
                 .expand({c.B, c.Hq, c.T, c.S});
  }
  if (c.key_padding) {
    // Stored [S, B] and transposed: strides (1, B).
    a.key_padding =
        host_tensor({c.S, c.B}, DType::Bool, [&](int64_t n) { return (n % c.B == 1 && n / c.B >= c.S - 5) ? 1.0 : 0.0; })
            .t();
  }
  if (c.dropout > 0) {
    a.dropout_p = c.dropout;
    a.seed = 0x1234abcdULL;
    a.offset = 77;
  }
  return a;
}

// The same arguments with every tensor moved to the GPU (the mask moved first, then expanded).
AttentionArgs args_on_gpu(const AttentionArgs& a) {
  AttentionArgs g = a;
  if (a.global.defined()) g.global = a.global.to(kCUDA);
  if (a.layout.defined()) g.layout = a.layout.to(kCUDA);
  if (a.mask.defined()) {
    Shape small = a.mask.shape();
    for (int dim = 0; dim < 4; ++dim)
      if (a.mask.stride(dim) == 0) small[static_cast<size_t>(dim)] = 1;
    Tensor compact = empty(small, DType::Bool);
    cpu().copy(a.mask.narrow(0, 0, small[0]).narrow(1, 0, small[1]).narrow(2, 0, small[2]).narrow(3, 0, small[3]),
               compact);
    g.mask = compact.to(kCUDA).expand(a.mask.shape());
  }
  if (a.key_padding.defined()) g.key_padding = a.key_padding.t().to(kCUDA).t();
  return g;
}

// The inputs of a case as host values, rounded to the dtype.
struct Inputs {
  std::vector<double> q, k, v, grad_out;  // [B, Hq, T, d], [B, Hkv, S, d], [B, Hkv, S, dv], [B, Hq, T, dv]
};

Inputs inputs_of(const Case& c, DType dtype) {
  Inputs in;
  in.q = random_values(c.B * c.Hq * c.T * c.d, 1, 1.5, dtype);
  in.k = random_values(c.B * c.Hkv * c.S * c.d, 2, 1.5, dtype);
  in.v = random_values(c.B * c.Hkv * c.S * c.dv, 3, 1.0, dtype);
  in.grad_out = random_values(c.B * c.Hq * c.T * c.dv, 4, 1.0, dtype);
  return in;
}

struct Results {
  std::vector<double> out, lse, grad_q, grad_k, grad_v;
};

// The contract of tensor/backend.h in double. D = rowsum(grad_out * out_for_delta):
// the backward reads the out the forward saved, so the GPU's own out is passed.
Results reference(const Case& c, const AttentionArgs& a, const Inputs& in, const std::vector<double>& out_for_delta) {
  const AttentionPatternView pat = attention_pattern_view(a, c.T, c.S);
  const int64_t G = c.Hq / c.Hkv;
  Results r;
  r.out.assign(static_cast<size_t>(c.B * c.Hq * c.T * c.dv), 0.0);
  r.lse.assign(static_cast<size_t>(c.B * c.Hq * c.T), -kInf);
  r.grad_q.assign(in.q.size(), 0.0);
  r.grad_k.assign(in.k.size(), 0.0);
  r.grad_v.assign(in.v.size(), 0.0);
  std::vector<double> s(static_cast<size_t>(c.S)), z(static_cast<size_t>(c.S));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h) {
      const int64_t hk = h / G;
      for (int64_t i = 0; i < c.T; ++i) {
        const int64_t row = (b * c.Hq + h) * c.T + i;
        const double* qi = &in.q[static_cast<size_t>(row * c.d)];
        double m = -kInf;
        for (int64_t j = 0; j < c.S; ++j) {
          const double* kj = &in.k[static_cast<size_t>(((b * c.Hkv + hk) * c.S + j) * c.d)];
          double dot = 0;
          for (int64_t x = 0; x < c.d; ++x) dot += qi[x] * kj[x];
          s[static_cast<size_t>(j)] = pat.masked(b, h, i, j) ? -kInf : dot * a.scale;
          m = std::max(m, s[static_cast<size_t>(j)]);
          z[static_cast<size_t>(j)] = 1;
          if (a.dropout_p > 0) {
            const uint64_t idx = static_cast<uint64_t>(row * c.S + j);
            z[static_cast<size_t>(j)] =
                attention_dropout_keep(a.seed, a.offset, idx, 1.0 - a.dropout_p) ? 1.0 / (1.0 - a.dropout_p) : 0.0;
          }
        }
        if (m == -kInf) continue;  // every key masked: out 0, lse -inf, no gradient
        double sum = 0;
        for (double x : s) sum += std::exp(x - m);
        const double lse = m + std::log(sum);
        r.lse[static_cast<size_t>(row)] = lse;
        const double* go = &in.grad_out[static_cast<size_t>(row * c.dv)];
        const double* od = &out_for_delta[static_cast<size_t>(row * c.dv)];
        double delta = 0;
        for (int64_t x = 0; x < c.dv; ++x) delta += go[x] * od[x];
        for (int64_t j = 0; j < c.S; ++j) {
          const double p = std::exp(s[static_cast<size_t>(j)] - lse), zj = z[static_cast<size_t>(j)];
          if (p == 0) continue;
          const size_t kj = static_cast<size_t>(((b * c.Hkv + hk) * c.S + j) * c.d);
          const size_t vj = static_cast<size_t>(((b * c.Hkv + hk) * c.S + j) * c.dv);
          double dp = 0;
          for (int64_t x = 0; x < c.dv; ++x) {
            r.out[static_cast<size_t>(row * c.dv + x)] += p * zj * in.v[vj + x];
            r.grad_v[vj + x] += p * zj * go[x];
            dp += go[x] * in.v[vj + x];
          }
          const double ds = p * (dp * zj - delta);
          for (int64_t x = 0; x < c.d; ++x) {
            r.grad_q[static_cast<size_t>(row * c.d + x)] += ds * in.k[kj + x] * a.scale;
            r.grad_k[kj + x] += ds * qi[x] * a.scale;
          }
        }
      }
    }
  return r;
}

// got within rtol of want, element by element, relative to the element plus
// the tensor's largest magnitude; -inf only where want is -inf.
void require_close(const char* what, const std::vector<double>& got, const std::vector<double>& want, double rtol) {
  REQUIRE(got.size() == want.size());
  double largest = 0;
  for (double w : want)
    if (std::isfinite(w)) largest = std::max(largest, std::abs(w));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isinf(want[i]) ? got[i] == want[i]
                                        : std::abs(got[i] - want[i]) <= rtol * (std::abs(want[i]) + largest);
    if (!ok && bad++ == 0) first = i;
  }
  INFO(what << ": " << bad << " of " << got.size() << " elements off (rtol " << rtol << "); first at " << first
            << ": got " << (bad ? got[first] : 0.0) << ", want " << (bad ? want[first] : 0.0));
  REQUIRE(bad == 0);
}

// The tensors of a case on one device.
struct Operands {
  Tensor q, k, v, grad_out;
};

Operands operands_on(const Case& c, DType dtype, const Inputs& in, Device device) {
  auto make = [&](const Shape& shape, const std::vector<double>& vals) {
    return host_tensor(shape, dtype, [&](int64_t i) { return vals[static_cast<size_t>(i)]; }).to(device);
  };
  Operands o;
  if (c.transposed_q) {
    const Tensor qt = host_tensor({c.B, c.T, c.Hq, c.d}, dtype, [&](int64_t n) {
      const int64_t b = n / (c.T * c.Hq * c.d), t = (n / (c.Hq * c.d)) % c.T, h = (n / c.d) % c.Hq, x = n % c.d;
      return in.q[static_cast<size_t>(((b * c.Hq + h) * c.T + t) * c.d + x)];
    });
    o.q = qt.to(device).transpose(1, 2);
  } else if (c.offset_q) {
    const Tensor wide = host_tensor({c.B, c.Hq, c.T, c.d + 1}, dtype, [&](int64_t n) {
      const int64_t row = n / (c.d + 1), x = n % (c.d + 1);
      return x == 0 ? 1e30 : in.q[static_cast<size_t>(row * c.d + x - 1)];
    });
    o.q = wide.to(device).narrow(3, 1, c.d);
  } else {
    o.q = make({c.B, c.Hq, c.T, c.d}, in.q);
  }
  if (c.strided_kv) {
    const int64_t L = c.S + 7;
    auto cache = [&](const std::vector<double>& vals, int64_t w) {
      return host_tensor({c.B, c.Hkv, L, w}, dtype,
                         [&](int64_t n) {
                           const int64_t bh = n / (L * w), l = (n / w) % L, x = n % w;
                           return l < c.S ? vals[static_cast<size_t>((bh * c.S + l) * w + x)] : 1e30;
                         })
          .to(device)
          .narrow(2, 0, c.S);
    };
    o.k = cache(in.k, c.d);
    o.v = cache(in.v, c.dv);
  } else {
    o.k = make({c.B, c.Hkv, c.S, c.d}, in.k);
    o.v = make({c.B, c.Hkv, c.S, c.dv}, in.v);
  }
  o.grad_out = make({c.B, c.Hq, c.T, c.dv}, in.grad_out);
  return o;
}

struct Run {
  Tensor out, lse, grad_q, grad_k, grad_v;
};

// Forward and backward with `row`'s kernels; every output starts as NaN, so
// an element left unwritten shows.
Run run_kernels(const Backend& row, const Case& c, DType dtype, const Operands& o, const AttentionArgs& a,
                Device device) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Run r;
  r.out = full({c.B, c.Hq, c.T, c.dv}, nan, dtype, device);
  r.lse = full({c.B, c.Hq, c.T}, nan, compute_dtype(dtype), device);
  row.attention_forward(o.q, o.k, o.v, a, r.out, r.lse);
  r.grad_q = full({c.B, c.Hq, c.T, c.d}, nan, dtype, device);
  r.grad_k = full({c.B, c.Hkv, c.S, c.d}, nan, dtype, device);
  r.grad_v = full({c.B, c.Hkv, c.S, c.dv}, nan, dtype, device);
  row.attention_backward(o.grad_out, o.q, o.k, o.v, r.out, r.lse, a, r.grad_q, r.grad_k, r.grad_v);
  return r;
}

Results values(const Run& r) {
  return {values_of(r.out), values_of(r.lse), values_of(r.grad_q), values_of(r.grad_k), values_of(r.grad_v)};
}

void require_results(const Results& got, const Results& want, double rtol) {
  require_close("out", got.out, want.out, rtol);
  require_close("lse", got.lse, want.lse, rtol);
  require_close("grad_q", got.grad_q, want.grad_q, rtol);
  require_close("grad_k", got.grad_k, want.grad_k, rtol);
  require_close("grad_v", got.grad_v, want.grad_v, rtol);
}

enum class Mode { Simt, Default, Tf32 };

const char* mode_name(Mode m) { return m == Mode::Simt ? "simt" : m == Mode::Default ? "default" : "tf32"; }

double tolerance(DType dtype, Mode mode, int64_t d, int64_t dv) {
  if (dtype == DType::Float64) return 1e-10;
  const bool tensor_shape = d == dv && (d == 64 || d == 128);
  if (dtype == DType::Float32) return mode == Mode::Tf32 && tensor_shape ? 1e-2 : 1e-4;
  return mode != Mode::Simt && tensor_shape ? std::ldexp(1.0, -6) : std::ldexp(1.0, -8);
}

// Runs a case on the GPU in every dtype and mode against the reference, and
// against the CPU's kernels where the CPU has them.
void check_case(const Case& c) {
  const AttentionArgs a_cpu = args_of(c);
  const AttentionArgs a_gpu = args_on_gpu(a_cpu);
  for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16}) {
    const Inputs in = inputs_of(c, dtype);
    const Operands o = operands_on(c, dtype, in, kCUDA);
    for (Mode mode : {Mode::Simt, Mode::Default, Mode::Tf32}) {
      if (mode == Mode::Tf32 && dtype != DType::Float32) continue;
      INFO(c.name << ", " << dtype_name(dtype) << ", " << mode_name(mode) << " kernels");
      EnvGuard env("HEED_CUDA_ATTENTION", mode == Mode::Simt ? "simt" : nullptr);
      Tf32Guard tf32(mode == Mode::Tf32);
      const Run run = run_kernels(gpu(), c, dtype, o, a_gpu, kCUDA);
      const Results got = values(run);
      const double rtol = tolerance(dtype, mode, c.d, c.dv);
      require_results(got, reference(c, a_cpu, in, got.out), rtol);
      // The backward again: the same bits.
      Tensor gq = empty(run.grad_q.shape(), dtype, kCUDA), gk = empty(run.grad_k.shape(), dtype, kCUDA),
             gv = empty(run.grad_v.shape(), dtype, kCUDA);
      gpu().attention_backward(o.grad_out, o.q, o.k, o.v, run.out, run.lse, a_gpu, gq, gk, gv);
      REQUIRE(bytes_of(gq) == bytes_of(run.grad_q));
      REQUIRE(bytes_of(gk) == bytes_of(run.grad_k));
      REQUIRE(bytes_of(gv) == bytes_of(run.grad_v));
      if (mode == Mode::Simt && cpu().attention_forward != nullptr && cpu().attention_backward != nullptr) {
        INFO("against the CPU's kernels");
        const Run cpu_run = run_kernels(cpu(), c, dtype, operands_on(c, dtype, in, kCPU), a_cpu, kCPU);
        require_results(got, values(cpu_run), 2 * rtol);
      }
    }
  }
}

// A case's kernels on the GPU in float32, default mode, from the case's own inputs.
Run run_float32_on_gpu(const Case& c) {
  const AttentionArgs a = args_on_gpu(args_of(c));
  const Inputs in = inputs_of(c, DType::Float32);
  return run_kernels(gpu(), c, DType::Float32, operands_on(c, DType::Float32, in, kCUDA), a, kCUDA);
}

}  // namespace

TEST_CASE("cuda attention: causal with fewer queries than keys, and T = 1 decoding", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.name = "causal T 50 S 80";
  c.T = 50, c.S = 80, c.causal = true;
  check_case(c);
  c.name = "causal T 1 S 37";
  c.B = 3, c.T = 1, c.S = 37;
  check_case(c);
  c.name = "not causal T 1 S 37, d 64";
  c.causal = false, c.d = c.dv = 64;
  check_case(c);
}

TEST_CASE("cuda attention: sliding windows and global positions", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.T = c.S = 100;
  c.name = "causal window 16";
  c.causal = true, c.window = 16;
  check_case(c);
  c.name = "symmetric window 10";
  c.causal = false, c.window = 10;
  check_case(c);
  c.name = "symmetric window 8 with globals";
  c.window = 8, c.globals = {0, 45, 99};
  check_case(c);
  c.name = "causal window 12 with globals, d 64";
  c.causal = true, c.window = 12, c.globals = {3, 70}, c.d = c.dv = 64;
  check_case(c);
}

TEST_CASE("cuda attention: block layout, broadcast mask and key padding", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.T = c.S = 96;
  c.name = "block layout 16";
  c.block = 16;
  check_case(c);
  c.name = "block layout 16, causal, d 128";
  c.causal = true, c.d = c.dv = 128;
  check_case(c);
  Case m;
  m.T = 40, m.S = 72;
  m.name = "broadcast mask";
  m.broadcast_mask = true;
  check_case(m);
  m.name = "key padding (transposed) with a causal pattern";
  m.broadcast_mask = false, m.key_padding = true, m.causal = true;
  check_case(m);
  m.name = "key padding, d 64";
  m.causal = false, m.d = m.dv = 64;
  check_case(m);
}

TEST_CASE("cuda attention: fully masked rows give zeros, lse -inf and no gradient", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.name = "masked rows";
  c.T = 12, c.S = 20, c.masked_rows = true;
  check_case(c);
  c.name = "masked rows, d 64";
  c.d = c.dv = 64;
  check_case(c);
  c.name = "more queries than keys, causal: the first rows see nothing";
  c.masked_rows = false, c.T = 30, c.S = 20, c.causal = true, c.d = c.dv = 32;
  check_case(c);
  // Spelled out once: a fully masked row's output is 0, its lse -inf, its grad_q 0.
  Case z;
  z.T = 8, z.S = 8, z.masked_rows = true;
  const Run run = run_float32_on_gpu(z);
  const std::vector<double> out = values_of(run.out), lse = values_of(run.lse), gq = values_of(run.grad_q);
  for (int64_t h = 0; h < z.Hq; ++h)
    for (int64_t i : {0, 5}) {
      const int64_t row = h * z.T + i;  // batch 0
      REQUIRE(lse[static_cast<size_t>(row)] == -kInf);
      for (int64_t x = 0; x < z.dv; ++x) REQUIRE(out[static_cast<size_t>(row * z.dv + x)] == 0.0);
      for (int64_t x = 0; x < z.d; ++x) REQUIRE(gq[static_cast<size_t>(row * z.d + x)] == 0.0);
    }
}

TEST_CASE("cuda attention: grouped query heads", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.Hq = 4, c.Hkv = 2, c.T = 33, c.S = 45, c.causal = true;
  c.name = "Hq 4, Hkv 2";
  check_case(c);
  c.name = "Hq 4, Hkv 1, d 64, key padding";
  c.Hkv = 1, c.d = c.dv = 64, c.key_padding = true;
  check_case(c);
  c.name = "Hq 4, Hkv 1, d 128";
  c.key_padding = false, c.d = c.dv = 128, c.T = 70, c.S = 70;
  check_case(c);
}

TEST_CASE("cuda attention: odd sizes, head dims and strided operands", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.name = "T 67, S 131, d 40, dv 24";
  c.B = 1, c.T = 67, c.S = 131, c.d = 40, c.dv = 24;
  check_case(c);
  c.name = "T 67, S 131, d 40, causal, transposed q, strided k and v";
  c.dv = 40, c.causal = true, c.transposed_q = true, c.strided_kv = true;
  check_case(c);
  c.name = "d 8, dv 200";
  c.T = 19, c.S = 23, c.d = 8, c.dv = 200, c.causal = false, c.transposed_q = false, c.strided_kv = false;
  check_case(c);
  c.name = "d 256, causal";
  c.T = 45, c.S = 45, c.d = c.dv = 256, c.causal = true;
  check_case(c);
  c.name = "d 128, T 130, S 129, transposed q";
  c.d = c.dv = 128, c.T = 130, c.S = 129, c.causal = false, c.transposed_q = true;
  check_case(c);
  c.name = "d 64, T 70, S 90, causal, q rows not 16-byte aligned";
  c.d = c.dv = 64, c.T = 70, c.S = 90, c.causal = true, c.transposed_q = false, c.offset_q = true;
  check_case(c);
  c.offset_q = false;
  c.name = "d 64, T 150, S 200, causal, strided k and v";
  c.d = c.dv = 64, c.T = 150, c.S = 200, c.causal = true, c.transposed_q = false, c.strided_kv = true;
  check_case(c);
}

TEST_CASE("cuda attention: dropout draws attention_dropout_keep's mask", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.name = "dropout 0.2";
  c.T = 37, c.S = 53, c.dropout = 0.2;
  check_case(c);
  c.name = "dropout 0.3, causal, d 64, GQA";
  c.Hq = 4, c.Hkv = 2, c.causal = true, c.dropout = 0.3, c.d = c.dv = 64;
  check_case(c);
}

TEST_CASE("cuda attention: empty sizes and bad arguments", "[cuda][attention]") {
  HEED_SKIP_WITHOUT_GPU();
  Case c;
  c.name = "no keys: every row masked";
  c.S = 0;
  const Run run = run_float32_on_gpu(c);
  for (double x : values_of(run.out)) REQUIRE(x == 0.0);
  for (double x : values_of(run.lse)) REQUIRE(x == -kInf);
  for (double x : values_of(run.grad_q)) REQUIRE(x == 0.0);
  c.S = 9, c.T = 0;  // no queries: grad_k and grad_v are zero
  const Run none = run_float32_on_gpu(c);
  for (double x : values_of(none.grad_k)) REQUIRE(x == 0.0);
  for (double x : values_of(none.grad_v)) REQUIRE(x == 0.0);

  const Tensor q = zeros({1, 2, 4, 300}, DType::Float32, kCUDA), k = zeros({1, 2, 4, 300}, DType::Float32, kCUDA);
  Tensor out = empty({1, 2, 4, 300}, DType::Float32, kCUDA), lse = empty({1, 2, 4}, DType::Float32, kCUDA);
  REQUIRE_THROWS_AS(gpu().attention_forward(q, k, k, AttentionArgs{}, out, lse), Error);  // head dim 300
  const Tensor q3 = zeros({1, 3, 4, 16}, DType::Float32, kCUDA), k2 = zeros({1, 2, 4, 16}, DType::Float32, kCUDA);
  Tensor out3 = empty({1, 3, 4, 16}, DType::Float32, kCUDA), lse3 = empty({1, 3, 4}, DType::Float32, kCUDA);
  REQUIRE_THROWS_AS(gpu().attention_forward(q3, k2, k2, AttentionArgs{}, out3, lse3), Error);  // 3 heads on 2
  Tensor lse64 = empty({1, 3, 4}, DType::Float64, kCUDA);
  const Tensor k3 = zeros({1, 3, 4, 16}, DType::Float32, kCUDA);
  REQUIRE_THROWS_AS(gpu().attention_forward(q3, k3, k3, AttentionArgs{}, out3, lse64), Error);  // lse dtype
  EnvGuard env("HEED_CUDA_ATTENTION", "fast");
  REQUIRE_THROWS_AS(gpu().attention_forward(q3, k3, k3, AttentionArgs{}, out3, lse3), Error);
}
