#pragma once
// Classification losses, as torch.nn.functional.cross_entropy / nll_loss
// (PyTorch 1.13 semantics), composed from differentiable tensor ops so that
// backward, double backward and every device work without a kernel of their
// own.
//
// Layout: the class axis is the LAST axis. logits / log_probs are [..., C]
// and target is int64 [...] with the same leading shape ([N, C] with [N];
// [B, T, V] with [B, T]; [C] with a 0-dim target). PyTorch puts the class
// axis at dim 1 for inputs of more than two dims; here a [B, T, V] model
// output goes in as it is.
#include <cstdint>

#include "tensor/tensor.h"

namespace heed::nn {

enum class Reduction {
  Mean,  // sum over the rows that count, divided by how many rows count
  Sum,   // sum over the rows that count
  None,  // one loss per row, shaped like target; 0 at ignored rows
};

struct CrossEntropyOptions {
  // Rows whose target equals this add nothing, are not counted by Mean and
  // get zero gradient. May be a real class id (a PAD id) or -100.
  int64_t ignore_index = -100;
  // e in [0, 1]: the target distribution is (1 - e) one-hot + e / C uniform.
  double label_smoothing = 0;
  Reduction reduction = Reduction::Mean;
};

// Per counted row n with p = softmax(logits[n]):
//   loss[n] = (1 - e) * (-log p[target[n]]) + (e / C) * sum_c (-log p[c])
// Mean over no counted rows at all is 0 / 0 = NaN, as in PyTorch.
// A target outside [0, C) that is not ignore_index throws heed::Error.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options = {});

struct NLLLossOptions {
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
};

// loss[n] = -log_probs[n, target[n]]; log_probs usually from log_softmax.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options = {});

}  // namespace heed::nn
