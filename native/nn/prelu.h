#pragma once
// PReLU with one slope per channel: y = x if x > 0 else a[c] * x (PyTorch's rule, also at 0).
//
// On the CPU this is a fused kernel: ATen's PReLU backward goes through a generic broadcasting
// reduction that cost ~10% of a binary ResNet training step; here the input gradient and the
// per-channel slope gradient come from one pass with per-thread partial sums. On CUDA (channels-last,
// float32 / bfloat16 / float16 activations, float32 slopes) the kernels of nn/fused_cuda.h do the
// same with per-block sums, unless FusionFlags::cuda is off. Elsewhere ATen's implementation.
#include <torch/autograd.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace bnn::nn {

torch::Tensor prelu(const torch::Tensor& x, const torch::Tensor& weight);

// prelu(u + v, weight): on the CPU (channels-last float32, every slope positive) the residual sum
// and the activation are one pass and one autograd node that keeps only the output; on CUDA one
// pass and one node that keeps the sum (as prelu alone would); otherwise the two separate ops.
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

// ReActNet's RPReLU (Liu et al. 2020): y = PReLU(x - shift_in[c]; weight[c]) + shift_out[c], the
// paper's gamma and zeta as learnable per-channel shifts (initialised to 0, so a fresh RPReLU is a
// PReLU), slopes initialised to 0.25 as torch.nn.PReLU's. Parameter names, in registration order:
// shift_in, weight, shift_out. `weight` keeps torch.nn.PReLU's name for the slopes, and the module
// is registered where the PReLU was (`prelu`, `prelu1`, `prelu2`), so the shifts read as what they
// do (`layer1.0.prelu.shift_in`) and everything that treats PReLU slopes by name (noDecayOn
// 'prelu') treats RPReLU's parameters the same way.
class RPReLUImpl : public torch::nn::Cloneable<RPReLUImpl> {
 public:
  explicit RPReLUImpl(int64_t channels);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

  int64_t channels;
  torch::Tensor shift_in, weight, shift_out;
};
TORCH_MODULE(RPReLU);

}  // namespace bnn::nn
