#pragma once
// CUDA kernels of BinaryWeight (CUDA builds only), for float32 weights whose output channels are
// contiguous blocks (plain or channels-last), as the CPU fast path: the per-channel scale, sign *
// scale and the straight-through mask from one block per output channel (two passes over its
// row, the second from cache), instead of the eight elementwise ATen ops of the generic path.
#include <tuple>

#include <ATen/Tensor.h>

namespace bnn::cuda {

// {sign(W) * alpha, the 1-byte mask |W| <= 1, alpha [out, 1, ...]}; NaN weights stay NaN.
std::tuple<at::Tensor, at::Tensor, at::Tensor> binarize_weight(const at::Tensor& weight);
// grad * alpha where the mask keeps it, else 0 (a select: inf or NaN cut to exactly 0), float32 in the mask's layout.
at::Tensor binary_weight_grad(const at::Tensor& grad, const at::Tensor& mask, const at::Tensor& alpha);

}  // namespace bnn::cuda
