// CPU versus CUDA (tests/cuda_agreement.h has the harness and tolerances):
// unary and binary elementwise ops with their scalar variants, comparisons,
// logic, where and masked_fill, casts and copies, fills, joins and in-place
// ops, over strided, expanded and broadcast inputs and special values.
#include "tests/cuda_agreement.h"

using namespace heed;
using namespace heed::agreement;

namespace {

using Fn1 = std::function<Tensor(const Tensor&)>;
using Fn2 = std::function<Tensor(const Tensor&, const Tensor&)>;

// An op of one float input, with the values it is defined (and smooth) on.
struct UnarySpec {
  std::string name;
  Dist dist;
  Fn1 f;
};

std::vector<UnarySpec> unary_specs() {
  const Dist positive = U(0.05, 4);
  return {
      {"neg", N(), [](const Tensor& x) { return neg(x); }},
      {"exp", N(0, 2), [](const Tensor& x) { return exp(x); }},
      {"log", positive, [](const Tensor& x) { return log(x); }},
      {"sqrt", positive, [](const Tensor& x) { return sqrt(x); }},
      {"rsqrt", positive, [](const Tensor& x) { return rsqrt(x); }},
      {"tanh", N(0, 2), [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", N(0, 4), [](const Tensor& x) { return sigmoid(x); }},
      {"relu", N(), [](const Tensor& x) { return relu(x); }},
      {"gelu (erf)", N(0, 2), [](const Tensor& x) { return gelu(x); }},
      {"gelu (tanh)", N(0, 2), [](const Tensor& x) { return gelu(x, GeluApprox::Tanh); }},
      {"abs", N(), [](const Tensor& x) { return abs(x); }},
      {"sign", N(), [](const Tensor& x) { return sign(x); }},
      {"erf", N(), [](const Tensor& x) { return erf(x); }},
      {"sin", N(0, 3), [](const Tensor& x) { return sin(x); }},
      {"cos", N(0, 3), [](const Tensor& x) { return cos(x); }},
      {"reciprocal", U(0.5, 2), [](const Tensor& x) { return reciprocal(x); }},
      {"square", N(), [](const Tensor& x) { return square(x); }},
      {"x + 1.5", N(), [](const Tensor& x) { return x + 1.5; }},
      {"x - 0.75", N(), [](const Tensor& x) { return x - 0.75; }},
      {"0.5 - x", N(), [](const Tensor& x) { return 0.5 - x; }},
      {"x * -2.5", N(), [](const Tensor& x) { return x * -2.5; }},
      {"x / 3", N(), [](const Tensor& x) { return x / 3.0; }},
      {"2 / x", U(0.5, 2), [](const Tensor& x) { return 2.0 / x; }},
      {"pow 2", N(), [](const Tensor& x) { return pow(x, 2.0); }},
      {"pow 3", N(), [](const Tensor& x) { return pow(x, 3.0); }},
      {"pow 2.5", positive, [](const Tensor& x) { return pow(x, 2.5); }},
      {"pow -0.5", positive, [](const Tensor& x) { return pow(x, -0.5); }},
      {"pow 0", N(), [](const Tensor& x) { return pow(x, 0.0); }},
      {"clamp(-0.5, 0.7)", N(), [](const Tensor& x) { return clamp(x, -0.5, 0.7); }},
      {"clamp(-inf, 0.3)", N(), [](const Tensor& x) { return clamp(x, -kInf, 0.3); }},
  };
}

// The same op on values where it is not smooth or not finite: forward only.
const std::vector<double> kSpecialValues = {0.0,  -0.0,  1.0,  -1.0, kInf, -kInf, kNaN,  1e-40,
                                            1e30, -1e30, 88.8, -104, 0.5,  -2.5,  1e-20, -1e-20};

Cases unary_cases() {
  Cases cases;
  for (const UnarySpec& s : unary_specs()) {
    for (Layout l : kAllLayouts)
      cases.push_back({fmt::format("{} ({})", s.name, layout_name(l)),
                       [s, l](Inputs& in) { return TensorList{s.f(in.leaf(l, 5, 6, s.dist))}; }});
    cases.push_back({s.name + " (3-d, permuted)", [s](Inputs& in) {
                       Tensor x = in.leaf({4, 3, 5}, s.dist).permute({2, 0, 1});
                       return TensorList{s.f(x)};
                     }});
    cases.push_back({s.name + " (0-dim)", [s](Inputs& in) { return TensorList{s.f(in.leaf(Shape{}, s.dist))}; }});
    cases.push_back({s.name + " (special values)", [s](Inputs& in) {
                       const auto n = static_cast<int64_t>(kSpecialValues.size());
                       Tensor x = in.values<double>(kSpecialValues, {n}, DType::Float32);
                       return TensorList{s.f(x)};
                     }});
    cases.push_back({s.name + " (float64)",
                     [s](Inputs& in) {
                       return TensorList{s.f(in.leaf({5, 6}, s.dist, DType::Float64))};
                     },
                     kDouble});
  }
  // Large enough for many blocks and a grid-stride loop.
  cases.push_back({"exp (large, [517, 1031])", [](Inputs& in) { return TensorList{exp(in.leaf({517, 1031}))}; }});
  cases.push_back({"gelu (large, transposed [1031, 517])",
                   [](Inputs& in) { return TensorList{gelu(in.leaf(Layout::Transposed, 1031, 517))}; }});
  cases.push_back(
      {"sigmoid (large, sliced)", [](Inputs& in) { return TensorList{sigmoid(in.leaf(Layout::Sliced, 700, 333))}; }});

  // Integer dtypes allow neg, abs, sign, square and the scalar ops (scalars
  // truncated; clamp bounds rounded inward; uint8 wraps).
  struct IntSpec {
    std::string name;
    Fn1 f;
  };
  const std::vector<IntSpec> int_specs = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
      {"sign", [](const Tensor& x) { return sign(x); }},
      {"square", [](const Tensor& x) { return square(x); }},
      {"x + 2.7", [](const Tensor& x) { return x + 2.7; }},
      {"x * -3", [](const Tensor& x) { return x * -3.0; }},
      {"clamp(-2.5, 3.5)", [](const Tensor& x) { return clamp(x, -2.5, 3.5); }},
  };
  for (const IntSpec& s : int_specs) {
    for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::RowBroadcast})
      cases.push_back({fmt::format("int64 {} ({})", s.name, layout_name(l)), [s, l](Inputs& in) {
                         Tensor x = view_as_layout(in.ints(base_shape(l, 5, 6), -50, 50), l, 5, 6);
                         return TensorList{s.f(x)};
                       }});
    if (s.name != "neg" && s.name != "x * -3" && s.name != "clamp(-2.5, 3.5)")
      cases.push_back({"uint8 " + s.name, [s](Inputs& in) {
                         return TensorList{s.f(in.ints({5, 6}, 0, 256, DType::UInt8))};
                       }});
  }
  cases.push_back({"uint8 x * 3 (wraps)", [](Inputs& in) {
                     return TensorList{in.ints({5, 6}, 0, 256, DType::UInt8) * 3.0};
                   }});
  cases.push_back({"uint8 x + 200 (wraps)", [](Inputs& in) {
                     return TensorList{in.ints({5, 6}, 0, 256, DType::UInt8) + 200.0};
                   }});
  return cases;
}

// ---- binary ---------------------------------------------------------------------

struct BinarySpec {
  std::string name;
  Dist da, db;
  Fn2 f;
};

std::vector<BinarySpec> binary_specs() {
  return {
      {"add", N(), N(), [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"add with alpha -0.5", N(), N(), [](const Tensor& a, const Tensor& b) { return add(a, b, -0.5); }},
      {"sub", N(), N(), [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"mul", N(), N(), [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"div", N(), U(0.5, 2), [](const Tensor& a, const Tensor& b) { return a / b; }},
      {"pow", U(0.5, 2), N(), [](const Tensor& a, const Tensor& b) { return pow(a, b); }},
      {"maximum", N(), N(), [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", N(), N(), [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
  };
}

const std::vector<std::pair<Layout, Layout>> kLayoutPairs = {
    {Layout::Contiguous, Layout::Contiguous},
    {Layout::Transposed, Layout::Contiguous},
    {Layout::Sliced, Layout::Transposed},
    {Layout::ColumnStep, Layout::Sliced},
    {Layout::RowBroadcast, Layout::ColumnBroadcast},
    {Layout::ColumnBroadcast, Layout::ColumnStep},
};

Cases binary_cases() {
  Cases cases;
  for (const BinarySpec& s : binary_specs()) {
    for (auto [la, lb] : kLayoutPairs)
      cases.push_back(
          {fmt::format("{} ({}, {})", s.name, layout_name(la), layout_name(lb)), [s, la = la, lb = lb](Inputs& in) {
             Tensor a = in.leaf(la, 5, 6, s.da);
             Tensor b = in.leaf(lb, 5, 6, s.db);
             return TensorList{s.f(a, b)};
           }});
    cases.push_back({s.name + " ([5, 6] with [6])", [s](Inputs& in) {
                       Tensor a = in.leaf({5, 6}, s.da), b = in.leaf({6}, s.db);
                       return TensorList{s.f(a, b)};
                     }});
    cases.push_back({s.name + " ([5, 1] with [1, 6])", [s](Inputs& in) {
                       Tensor a = in.leaf({5, 1}, s.da), b = in.leaf({1, 6}, s.db);
                       return TensorList{s.f(a, b)};
                     }});
    cases.push_back({s.name + " (0-dim with [5, 6])", [s](Inputs& in) {
                       Tensor a = in.leaf(Shape{}, s.da), b = in.leaf(Layout::Transposed, 5, 6, s.db);
                       return TensorList{s.f(a, b)};
                     }});
    cases.push_back({s.name + " (3-d permuted with [2, 5, 1])", [s](Inputs& in) {
                       Tensor a = in.leaf({6, 2, 5}, s.da).permute({1, 2, 0});  // [2, 5, 6]
                       Tensor b = in.leaf({2, 5, 1}, s.db);
                       return TensorList{s.f(a, b)};
                     }});
    cases.push_back({s.name + " ([2, 1, 6] with [5, 6])", [s](Inputs& in) {
                       Tensor a = in.leaf({2, 1, 6}, s.da), b = in.leaf({5, 6}, s.db);
                       return TensorList{s.f(a, b)};
                     }});
    cases.push_back({s.name + " (float64)",
                     [s](Inputs& in) {
                       Tensor a = in.leaf(Layout::Transposed, 5, 6, s.da, DType::Float64);
                       Tensor b = in.leaf({6}, s.db, DType::Float64);
                       return TensorList{s.f(a, b)};
                     },
                     kDouble});
  }
  cases.push_back({"add (large, [517, 1031] with [1031])", [](Inputs& in) {
                     return TensorList{in.leaf({517, 1031}) + in.leaf({1031})};
                   }});
  cases.push_back({"mul (large, transposed with contiguous)", [](Inputs& in) {
                     return TensorList{in.leaf(Layout::Transposed, 600, 701) * in.leaf({600, 701})};
                   }});
  // Ties: maximum and minimum split the gradient in half.
  for (const char* name : {"maximum", "minimum"}) {
    const bool is_max = std::string(name) == "maximum";
    cases.push_back({fmt::format("{} with ties", name), [is_max](Inputs& in) {
                       Tensor a = in.leaf(in.ints({5, 6}, -2, 3, DType::Float32));
                       Tensor b = in.leaf(in.ints({6}, -2, 3, DType::Float32));
                       return TensorList{is_max ? maximum(a, b) : minimum(a, b)};
                     }});
    cases.push_back({fmt::format("{} with NaN and inf", name), [is_max](Inputs& in) {
                       Tensor a = in.values<double>({1, kNaN, 3, kInf, -kInf, kNaN}, {6}, DType::Float32);
                       Tensor b = in.values<double>({kNaN, 2, 1, 0, 0, kNaN}, {6}, DType::Float32);
                       return TensorList{is_max ? maximum(a, b) : minimum(a, b)};
                     }});
  }
  cases.push_back({"div by zero and inf (float)", [](Inputs& in) {
                     Tensor a = in.values<double>({1, -1, 0, kInf, 2, kNaN}, {6}, DType::Float32);
                     Tensor b = in.values<double>({0, 0, 0, kInf, -kInf, 1}, {6}, DType::Float32);
                     return TensorList{a / b};
                   }});
  cases.push_back({"pow special values", [](Inputs& in) {
                     Tensor a = in.values<double>({0, 0, -2, -2, 2, kInf, 1, kNaN}, {8}, DType::Float32);
                     Tensor b = in.values<double>({0, -1, 2, 0.5, -kInf, 0, kNaN, 0}, {8}, DType::Float32);
                     return TensorList{pow(a, b)};
                   }});

  // Integers: C++ semantics (division truncates toward zero), uint8 wraps.
  for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::RowBroadcast}) {
    const std::string where = layout_name(l);
    auto a_of = [l](Inputs& in) { return view_as_layout(in.ints(base_shape(l, 5, 6), -40, 40), l, 5, 6); };
    cases.push_back({"int64 add, sub, mul (" + where + ")", [a_of](Inputs& in) {
                       Tensor a = a_of(in), b = in.ints({6}, -40, 40);
                       return TensorList{a + b, a - b, a * b};
                     }});
    cases.push_back({"int64 div truncates toward zero (" + where + ")", [a_of](Inputs& in) {
                       Tensor a = a_of(in);
                       Tensor b = in.values<int64_t>({3, -3, 7, -2, 1, -1}, {6});
                       return TensorList{a / b};
                     }});
    cases.push_back({"int64 maximum, minimum (" + where + ")", [a_of](Inputs& in) {
                       Tensor a = a_of(in), b = in.ints({5, 1}, -40, 40);
                       return TensorList{maximum(a, b), minimum(a, b)};
                     }});
  }
  cases.push_back({"uint8 add, sub, mul wrap", [](Inputs& in) {
                     Tensor a = in.ints({5, 6}, 0, 256, DType::UInt8), b = in.ints({5, 6}, 0, 256, DType::UInt8);
                     return TensorList{a + b, a - b, a * b, maximum(a, b)};
                   }});
  return cases;
}

// ---- comparisons, logic, where, masked_fill ---------------------------------------

Cases compare_where_cases() {
  Cases cases;
  const std::vector<std::pair<std::string, Fn2>> comparisons = {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }},
  };
  for (const auto& [name, f] : comparisons) {
    // Small integers as floats give plenty of ties.
    for (auto [la, lb] : kLayoutPairs)
      cases.push_back(
          {fmt::format("{} ({}, {})", name, layout_name(la), layout_name(lb)), [f = f, la = la, lb = lb](Inputs& in) {
             Tensor a = view_as_layout(in.ints(base_shape(la, 5, 6), -2, 3, DType::Float32), la, 5, 6);
             Tensor b = view_as_layout(in.ints(base_shape(lb, 5, 6), -2, 3, DType::Float32), lb, 5, 6);
             return TensorList{f(a, b)};
           }});
    cases.push_back({name + " (float with [6])", [f = f](Inputs& in) {
                       return TensorList{f(in.draw({5, 6}), in.draw({6}))};
                     }});
    cases.push_back({name + " (int64)", [f = f](Inputs& in) {
                       return TensorList{f(in.ints({5, 6}, -3, 3), in.ints({5, 1}, -3, 3))};
                     }});
    cases.push_back({name + " (bool)", [f = f](Inputs& in) {
                       return TensorList{f(in.mask({5, 6}, 0.5), in.mask({6}, 0.5))};
                     }});
    cases.push_back(
        {name + " (float64)", [f = f](Inputs& in) {
           return TensorList{f(in.ints({5, 6}, -2, 3, DType::Float64), in.ints({6}, -2, 3, DType::Float64))};
         }});
    cases.push_back({name + " (NaN and inf)", [f = f](Inputs& in) {
                       Tensor a = in.values<double>({kNaN, kNaN, 1, kInf, -kInf, kInf, 0, -0.0}, {8}, DType::Float32);
                       Tensor b = in.values<double>({kNaN, 1, kNaN, kInf, kInf, 1e30, -0.0, 0}, {8}, DType::Float32);
                       return TensorList{f(a, b)};
                     }});
  }
  cases.push_back({"comparisons with a scalar", [](Inputs& in) {
                     Tensor x = in.ints({5, 6}, -2, 3, DType::Float32).t();
                     return TensorList{x > 0.5, x >= 0.0, x < -0.5, x <= 1.0, x == 1.0, x != 1.0};
                   }});
  cases.push_back({"int64 comparisons with a scalar", [](Inputs& in) {
                     Tensor x = in.ints({5, 6}, -2, 3);
                     return TensorList{x > 0.0, x >= 1.0, x < -1.0, x <= 1.0, x == 2.0, x != 0.0};
                   }});
  for (auto [la, lb] : kLayoutPairs)
    cases.push_back({fmt::format("logical and, or, not ({}, {})", layout_name(la), layout_name(lb)),
                     [la = la, lb = lb](Inputs& in) {
                       Tensor a = view_as_layout(in.mask(base_shape(la, 5, 6), 0.5), la, 5, 6);
                       Tensor b = view_as_layout(in.mask(base_shape(lb, 5, 6), 0.5), lb, 5, 6);
                       return TensorList{logical_and(a, b), logical_or(a, b), logical_not(a), a && b, a || b, !b};
                     }});
  cases.push_back({"isnonfinite (float32, float64, int64)", [](Inputs& in) {
                     const auto n = static_cast<int64_t>(kSpecialValues.size());
                     Tensor x = in.values<double>(kSpecialValues, {n});
                     Tensor x32 = in.values<double>(kSpecialValues, {n}, DType::Float32);
                     return TensorList{isnonfinite(x), isnonfinite(x32), isnonfinite(in.ints({4}, -5, 5)),
                                       isnonfinite(x.slice(0, 1, n, 3))};
                   }});
  cases.push_back({"any_non_finite", [](Inputs& in) {
                     Tensor clean = in.draw({300, 7});
                     Tensor dirty = in.values<double>({1, 2, kInf, 3}, {4}, DType::Float32);
                     Tensor nan = in.values<double>({1, kNaN}, {2});
                     const Device d = in.device();
                     return TensorList{scalar_tensor(any_non_finite(clean), DType::Bool, d),
                                       scalar_tensor(any_non_finite(dirty), DType::Bool, d),
                                       scalar_tensor(any_non_finite(nan), DType::Bool, d)};
                   }});

  // where(cond, a, b): gradient to a where cond, to b elsewhere.
  for (auto [la, lb] : kLayoutPairs)
    cases.push_back({fmt::format("where ({}, {})", layout_name(la), layout_name(lb)), [la = la, lb = lb](Inputs& in) {
                       Tensor cond = in.mask({5, 6}, 0.5);
                       return TensorList{where(cond, in.leaf(la, 5, 6), in.leaf(lb, 5, 6))};
                     }});
  cases.push_back({"where (cond [5, 1], a [5, 6], b [6])", [](Inputs& in) {
                     Tensor cond = in.mask({5, 1}, 0.5);
                     return TensorList{where(cond, in.leaf({5, 6}), in.leaf({6}))};
                   }});
  cases.push_back({"where (transposed cond, 0-dim b)", [](Inputs& in) {
                     Tensor cond = in.mask({6, 5}, 0.5).t();
                     return TensorList{where(cond, in.leaf(Layout::Sliced, 5, 6), in.leaf(Shape{}))};
                   }});
  cases.push_back({"where (large)", [](Inputs& in) {
                     Tensor cond = in.mask({700, 513}, 0.3);
                     return TensorList{where(cond, in.leaf({700, 513}), in.leaf({513}))};
                   }});
  cases.push_back({"where (int64, bool, float64)",
                   [](Inputs& in) {
                     Tensor cond = in.mask({5, 6}, 0.5);
                     return TensorList{where(cond, in.ints({5, 6}, -9, 9), in.ints({6}, -9, 9)),
                                       where(cond, in.mask({5, 6}, 0.5), in.mask({5, 6}, 0.5)),
                                       where(cond.t().t(), in.leaf({5, 6}, N(), DType::Float64),
                                             in.leaf({5, 1}, N(), DType::Float64))};
                   },
                   kDouble});
  for (Layout l : kAllLayouts)
    cases.push_back({fmt::format("masked_fill with -inf and 2.5 ({})", layout_name(l)), [l](Inputs& in) {
                       Tensor x = in.leaf(l, 5, 6);
                       Tensor mask = in.mask({5, 6}, 0.4), row_mask = in.mask({1, 6}, 0.5);
                       return TensorList{masked_fill(x, mask, -kInf), x.masked_fill(row_mask, 2.5)};
                     }});
  cases.push_back({"masked_fill (int64 with a transposed mask)", [](Inputs& in) {
                     return TensorList{masked_fill(in.ints({5, 6}, -9, 9), in.mask({6, 5}, 0.5).t(), 42)};
                   }});
  return cases;
}

// ---- casts, copies, contiguous, joins, fills ------------------------------------------

const std::vector<DType> kDTypes = {DType::Float32, DType::Float64, DType::Int64, DType::Bool, DType::UInt8};

// Values of `dtype` that every other dtype can hold or convert with defined
// C++ semantics (floats in [0, 250) with zeros and fractions, int64 of both
// signs for the modular uint8 conversion, masks, bytes).
Tensor cast_source(Inputs& in, DType dtype, const Shape& shape) {
  switch (dtype) {
    case DType::Float32:
    case DType::Float64:
    case DType::BFloat16: {
      Tensor v = in.host_draw(shape, U(0, 250), DType::Float64);
      return in.put(where(in.host_mask(shape, 0.2), zeros({}, DType::Float64), v).to(dtype));
    }
    case DType::Int64:
      return in.ints(shape, -300, 300);
    case DType::Bool:
      return in.mask(shape, 0.5);
    case DType::UInt8:
      return in.ints(shape, 0, 256, DType::UInt8);
  }
  return Tensor();
}

Cases copy_fill_cases() {
  Cases cases;
  for (DType from : kDTypes)
    for (DType to : kDTypes)
      for (bool transposed : {false, true})
        cases.push_back(
            {fmt::format("{} to {} ({})", dtype_name(from), dtype_name(to), transposed ? "transposed" : "contiguous"),
             [from, to, transposed](Inputs& in) {
               Tensor x = cast_source(in, from, transposed ? Shape{6, 5} : Shape{5, 6});
               if (transposed) x = x.t();
               return TensorList{x.to(to)};
             }});
  cases.push_back({"float32 with negatives to int64, float64, bool", [](Inputs& in) {
                     Tensor x = in.draw({5, 6}, N(0, 50)).t();
                     return TensorList{x.to(DType::Int64), x.to(DType::Float64), x.to(DType::Bool)};
                   }});
  cases.push_back({"special values between float32, float64 and bool", [](Inputs& in) {
                     const auto n = static_cast<int64_t>(kSpecialValues.size());
                     Tensor d = in.values<double>(kSpecialValues, {n});
                     Tensor big = in.values<double>({1e300, -1e300, 1e-300, 0.1, 1.0 / 3.0}, {5});
                     return TensorList{d.to(DType::Float32), d.to(DType::Bool), d.to(DType::Float32).to(DType::Float64),
                                       big.to(DType::Float32)};
                   }});
  cases.push_back({"float32 to float64 and back, with gradients", [](Inputs& in) {
                     Tensor x = in.leaf(Layout::Sliced, 5, 6);
                     Tensor y = in.leaf({5, 6}, N(), DType::Float64);
                     return TensorList{x.to(DType::Float64), y.t().to(DType::Float32)};
                   }});

  for (DType dtype : kDTypes) {
    const std::string name = dtype_name(dtype);
    cases.push_back({"contiguous of a transposed " + name, [dtype](Inputs& in) {
                       return TensorList{cast_source(in, dtype, {7, 9}).t().contiguous()};
                     }});
    cases.push_back({"contiguous of a 3-d permuted, sliced " + name, [dtype](Inputs& in) {
                       Tensor x = cast_source(in, dtype, {4, 6, 10}).permute({2, 0, 1}).slice(0, 1, 10, 3);
                       return TensorList{x.contiguous()};
                     }});
    cases.push_back({"clone of an expanded " + name, [dtype](Inputs& in) {
                       return TensorList{cast_source(in, dtype, {1, 9}).expand({4, 9}).clone()};
                     }});
    cases.push_back({"a strided " + name + " view brought to the CPU", [dtype](Inputs& in) {
                       // The harness's .to(kCPU) of this view is the device-to-host copy of a strided tensor.
                       return TensorList{cast_source(in, dtype, {8, 6}).t().slice(1, 1, 8, 2)};
                     }});
  }
  cases.push_back({"contiguous of a transposed leaf, with gradients", [](Inputs& in) {
                     return TensorList{in.leaf({4, 6, 10}).permute({2, 0, 1}).contiguous(),
                                       in.leaf(Layout::ColumnStep, 5, 6).clone()};
                   }});
  cases.push_back({"contiguous (large, transposed [1031, 517])",
                   [](Inputs& in) { return TensorList{in.leaf(Layout::Transposed, 1031, 517).contiguous()}; }});
  cases.push_back({"copy_ from the CPU into a transposed view, float64 to float32", [](Inputs& in) {
                     Tensor dst = in.draw({6, 5});
                     Generator g(7);
                     Tensor src = randn({5, 6}, &g, DType::Float64);  // stays on the CPU
                     dst.t().copy_(src);
                     return TensorList{dst};
                   }});
  cases.push_back({"copy_ of an expanded int64 into a sliced float32 view", [](Inputs& in) {
                     Tensor dst = in.draw({7, 8});
                     dst.slice(0, 1, 7, 2).narrow(1, 2, 5).copy_(in.ints({1, 5}, -9, 9));
                     return TensorList{dst};
                   }});
  cases.push_back({"copy_ of a transposed float32 into int64 (truncates)", [](Inputs& in) {
                     Tensor x = in.draw({5, 6}, N(0, 100));
                     Tensor dst = zeros({6, 5}, DType::Int64, in.device());
                     dst.copy_(x.t());
                     return TensorList{dst};
                   }});
  cases.push_back({"cat, stack, split and chunk", [](Inputs& in) {
                     Tensor a = in.leaf(Layout::Contiguous, 3, 6), b = in.leaf(Layout::Transposed, 4, 6);
                     Tensor c = in.leaf(Layout::RowBroadcast, 3, 6);
                     TensorList out{cat({a, b, c}, 0), cat({a.t(), c.t()}, 1), stack({a, c, a}, 1)};
                     for (const Tensor& p : split(in.leaf({7, 6}), 3, 0)) out.push_back(p);
                     for (const Tensor& p : chunk(in.leaf(Layout::Sliced, 4, 6), 3, 1)) out.push_back(p);
                     return out;
                   }});
  cases.push_back({"cat of int64, bool and uint8", [](Inputs& in) {
                     return TensorList{cat({in.ints({2, 3}, -9, 9), in.ints({3, 2}, -9, 9).t()}, 0),
                                       cat({in.mask({2, 3}, 0.5), in.mask({2, 1}, 0.5)}, 1),
                                       stack({in.ints({4}, 0, 256, DType::UInt8), in.ints({4}, 0, 256, DType::UInt8)})};
                   }});

  // Fills and factories on the device.
  cases.push_back({"zeros, ones, full, scalar_tensor, arange on the device", [](Inputs& in) {
                     const Device d = in.device();
                     TensorList out;
                     for (DType dtype : kDTypes) {
                       out.push_back(zeros({3, 4}, dtype, d));
                       out.push_back(ones({3, 4}, dtype, d));
                       out.push_back(full({5}, dtype == DType::Bool ? 1.0 : 7.0, dtype, d));
                       out.push_back(scalar_tensor(1.0, dtype, d));
                     }
                     out.push_back(full({2, 2}, 7.25, DType::Float32, d));
                     out.push_back(full({2, 2}, -1e300, DType::Float64, d));
                     out.push_back(full({3}, static_cast<double>(int64_t{1} << 40), DType::Int64, d));
                     out.push_back(full({3}, kNaN, DType::Float32, d));
                     out.push_back(full({1000, 1001}, -2.5, DType::Float32, d));
                     out.push_back(arange(0.0, 10.0, 0.5, DType::Float32, d));
                     out.push_back(arange(7, DType::Int64, d));
                     Tensor x = in.draw({4, 3});
                     out.push_back(zeros_like(x));
                     out.push_back(ones_like(x.t()));
                     out.push_back(full_like(x, 3.0));
                     return out;
                   }});
  for (DType dtype : kDTypes) {
    const double value = dtype == DType::Bool ? 1.0 : dtype == DType::UInt8 ? 200.0 : -3.0;
    cases.push_back(
        {fmt::format("fill_ of a sliced, transposed {} view", dtype_name(dtype)), [dtype, value](Inputs& in) {
           Tensor base = cast_source(in, dtype, {7, 8});
           base.t().slice(0, 1, 8, 2).narrow(1, 1, 4).fill_(value);
           Tensor whole = cast_source(in, dtype, {5, 4});
           whole.fill_(value);
           Tensor column = cast_source(in, dtype, {3, 5});
           column.select(1, 2).zero_();
           return TensorList{base, whole, column};
         }});
  }
  return cases;
}

// ---- in-place ops ------------------------------------------------------------------

Cases inplace_cases() {
  Cases cases;
  // Without autograd the op runs and is copied into the (possibly strided) target.
  for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::Sliced, Layout::ColumnStep}) {
    cases.push_back({fmt::format("in-place arithmetic on a {} target", layout_name(l)), [l](Inputs& in) {
                       Tensor base = in.draw(base_shape(l, 5, 6));
                       Tensor t = view_as_layout(base, l, 5, 6);
                       t.add_(in.draw({6}), 0.5).sub_(in.draw({5, 1})).mul_(in.draw({5, 6}));
                       t.div_(in.draw({6}, U(0.5, 2))).add_(1.25).mul_(-2.0).clamp_(-3, 2.5);
                       t.masked_fill_(in.mask({5, 6}, 0.3), -7);
                       return TensorList{base};
                     }});
  }
  cases.push_back({"in-place ops on int64", [](Inputs& in) {
                     Tensor t = in.ints({5, 6}, -20, 20);
                     t.add_(in.ints({6}, -5, 5)).mul_(3.0).clamp_(-30, 30);
                     t.masked_fill_(in.mask({5, 6}, 0.3), 99);
                     return TensorList{t};
                   }});
  // With autograd: in place on a non-leaf records the op and its gradient.
  cases.push_back({"in-place ops on a non-leaf, with gradients", [](Inputs& in) {
                     Tensor x = in.leaf({5, 6});
                     Tensor other = in.leaf({6});
                     Tensor h = x * 1.0;
                     h.add_(other).mul_(2.0).sub_(x).add_(0.5);
                     h.div_(in.leaf({5, 1}, U(0.5, 2)));
                     h.clamp_(-1.5, 1.5);
                     h.masked_fill_(in.mask({1, 6}, 0.5), 0.25);
                     return TensorList{h};
                   }});
  cases.push_back({"copy_ and fill_ on a non-leaf, with gradients", [](Inputs& in) {
                     Tensor x = in.leaf({5, 6});
                     Tensor h = x * 2.0;
                     h.copy_(in.leaf({6}));  // broadcast source
                     Tensor k = x * 3.0;
                     k.fill_(1.5);
                     return TensorList{h, k + x};
                   }});
  return cases;
}

}  // namespace

HEED_AGREEMENT_TEST("unary elementwise ops and scalar variants", unary_cases)
HEED_AGREEMENT_TEST("binary elementwise ops and broadcasting", binary_cases)
HEED_AGREEMENT_TEST("comparisons, logic, where and masked_fill", compare_where_cases)
HEED_AGREEMENT_TEST("casts, copies, contiguous, joins and fills", copy_fill_cases)
HEED_AGREEMENT_TEST("in-place ops", inplace_cases)

TEST_CASE("cuda agreement: the comparison catches a wrong value, a misplaced NaN and a missing gradient",
          "[cuda][agreement][cpu]") {
  Tensor a = from_vector<float>({1, 2, static_cast<float>(kNaN), 4}, {4});
  CHECK(mismatch(a, a.clone(), kFloat).empty());
  CHECK_FALSE(mismatch(a, from_vector<float>({1, 2.001f, static_cast<float>(kNaN), 4}, {4}), kFloat).empty());
  CHECK_FALSE(mismatch(a, from_vector<float>({1, 2, 3, 4}, {4}), kFloat).empty());
  CHECK_FALSE(mismatch(a, from_vector<float>({1, 2, static_cast<float>(kNaN), 4}, {2, 2}), kFloat).empty());
  CHECK_FALSE(mismatch(a, to_dtype(a, DType::Float64), kFloat).empty());
  CHECK_FALSE(mismatch(a, Tensor(), kFloat).empty());
  CHECK(mismatch(Tensor(), Tensor(), kFloat).empty());
  CHECK(mismatch(from_vector<float>({1e-6f}), from_vector<float>({5e-6f}), kFloat).empty());  // within atol
  CHECK_FALSE(mismatch(from_vector<int64_t>({1, 2}), from_vector<int64_t>({1, 3}), kFloat).empty());
  CHECK_FALSE(
      mismatch(from_vector<float>({static_cast<float>(kInf)}), from_vector<float>({static_cast<float>(-kInf)}), kFloat)
          .empty());
  CHECK_FALSE(mismatch(from_vector<float>({1.0f}), from_vector<float>({1.0f + 1e-6f}), kExact).empty());
}
