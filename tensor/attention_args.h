#pragma once
// The arguments of the fused attention kernels (Backend::attention_forward /
// attention_backward) on the host side, and the plain view of them that a
// kernel of either device reads (tensor/attention_pattern.h).
#include <cstdint>

#include "tensor/attention_pattern.h"
#include "tensor/tensor.h"

namespace heed {

struct AttentionArgs {
  double scale = 1;
  bool causal = false;
  int64_t window = 0;     // > 0: sliding window (see AttentionPatternView)
  Tensor global;          // Bool [S], contiguous: global positions of a window; undefined: none
  Tensor layout;          // Bool [ceil(T / block), ceil(S / block)], contiguous; undefined: none
  int64_t block = 0;      // the layout's block size
  Tensor mask;            // Bool, expanded to [B, Hq, T, S] (stride 0 where broadcast); undefined: none
  Tensor key_padding;     // Bool [B, S], any strides; undefined: none
  double dropout_p = 0;   // > 0: dropout on the probabilities, from the Philox stream below
  uint64_t seed = 0, offset = 0;
};

// The view a kernel reads; tensors must already be on the kernel's device.
inline AttentionPatternView attention_pattern_view(const AttentionArgs& a, int64_t T, int64_t S) {
  AttentionPatternView v;
  v.T = T, v.S = S, v.shift = S - T;
  v.causal = a.causal;
  v.window = a.window;
  // raw_data: the element at the view's offset, on whichever device holds it.
  auto bytes = [](const Tensor& t) { return static_cast<const uint8_t*>(t.raw_data()); };
  if (a.global.defined()) v.global = bytes(a.global);
  if (a.layout.defined()) {
    v.layout = bytes(a.layout);
    v.block = a.block;
    v.layout_cols = a.layout.size(1);
  }
  if (a.mask.defined()) {
    v.mask = bytes(a.mask);
    for (int d = 0; d < 4; ++d) v.mask_stride[d] = a.mask.stride(d);
  }
  if (a.key_padding.defined()) {
    v.key_padding = bytes(a.key_padding);
    v.padding_stride[0] = a.key_padding.stride(0);
    v.padding_stride[1] = a.key_padding.stride(1);
  }
  return v;
}

}  // namespace heed
