// dropout: residual + x * mask / (1 - p) as one op. Composed, dropout draws a
// mask tensor (a pass and an allocation), scales it (another), multiplies
// (another), adds the residual (another), and keeps the mask for backward.
// Here one kernel draws each element's keep bit from the counter-based
// generator as it goes, and backward draws the same bits again from the
// (seed, offset) it saved, so no mask is ever stored. The bits and the
// arithmetic are the composed op's (tensor/dropout_rule.h): the same seed
// gives the same numbers either way.
#include "tensor/record.h"
#include "tensor/op_helpers.h"
#include "tensor/random.h"
#include "tensor/tensor_impl.h"

namespace heed {

namespace {

// The op with its stream fixed; its backward is itself, applied to the
// gradient with the same stream and no residual (so create_graph works too).
Tensor dropout_at(const Tensor& x, double p, uint64_t seed, uint64_t offset, const Tensor& residual) {
  const Tensor xc = contiguous(x.detach());
  const Tensor rc = residual.defined() ? contiguous(residual.detach()) : Tensor();
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) detail::kernel(x.device(), &Backend::dropout, "dropout")(xc, rc, p, seed, offset, out);
  if (auto* node = record("dropout", {x, residual}, out)) {
    node->backward = [p, seed, offset, rx = x.requires_grad(),
                      rr = residual.defined() && residual.requires_grad()](const Tensor& g) {
      return TensorList{rx ? dropout_at(g, p, seed, offset, Tensor()) : Tensor(), rr ? g : Tensor()};
    };
  }
  return out;
}

}  // namespace

Tensor fused_dropout(const Tensor& x, double p, Generator* gen, const Tensor& residual) {
  detail::check_floating(x, "dropout");
  HEED_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1) here, got {} (p = 1 drops everything: use zeros)", p);
  if (residual.defined()) {
    detail::check_device(residual, x.device(), "dropout", "residual");
    HEED_CHECK(residual.shape() == x.shape(), "dropout: residual must have x's shape {}, got {}", shape_str(x.shape()),
               shape_str(residual.shape()));
    // A float32 residual stream meeting a bf16 activation (autocast) is
    // widened by the add, which the kernel does not do: composed there.
    if (residual.dtype() != x.dtype()) return add(residual, fused_dropout(x, p, gen));
  }
  if (p == 0) return residual.defined() ? add(residual, x) : x;
  Generator& g = gen != nullptr ? *gen : default_generator();
  // Bernoulli's draw: one word a sample, whole Philox blocks (tensor/philox.h).
  const uint64_t offset = g.advance((static_cast<uint64_t>(x.numel()) + 3) / 4);
  return dropout_at(x, p, g.seed(), offset, residual);
}

}  // namespace heed
