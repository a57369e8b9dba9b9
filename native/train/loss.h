#pragma once
#include <torch/types.h>

namespace bnn::train {

// Mean cross-entropy over a batch, with optional label smoothing. Checks shapes, dtypes and the
// label range first, so a bad label is a clear error instead of a device-side assert on CUDA.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing = 0.0);

}  // namespace bnn::train
