#pragma once
// PReLU with one slope per channel: y = x if x > 0 else a[c] * x (PyTorch's rule, also at 0).
//
// On the CPU this is a fused kernel: ATen's PReLU backward goes through a generic broadcasting
// reduction that cost ~10% of a binary ResNet training step; here the input gradient and the
// per-channel slope gradient come from one pass with per-thread partial sums. Other devices use
// ATen's implementation.
#include <torch/autograd.h>
#include <torch/types.h>

namespace bnn::nn {

torch::Tensor prelu(const torch::Tensor& x, const torch::Tensor& weight);

// prelu(u + v, weight): on the CPU (channels-last float32, every slope positive) the residual sum
// and the activation are one pass and one autograd node that keeps only the output; otherwise the
// two separate ops.
torch::Tensor prelu_add(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& weight);

class PReLUFunction : public torch::autograd::Function<PReLUFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads);
};

class PReLUAddFunction : public torch::autograd::Function<PReLUAddFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u, const torch::Tensor& v,
                               const torch::Tensor& weight);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads);
};

}  // namespace bnn::nn
