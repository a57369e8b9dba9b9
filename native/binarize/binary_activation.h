#pragma once
// The recipe's binary activation: sign forward, straight-through gradient clipped to |x| < 1.
//
// Forward maps x to +1 where x >= 0 and to -1 where x < 0. Unlike torch::sign, 0 maps to +1, so
// every output is truly binary (torch::sign(0) == 0 would feed a third value into the next
// convolution). NaN stays NaN, so a diverging run is caught by the loss check instead of hidden.
//
// Backward passes the incoming gradient where -1 < x < 1 and zeroes it where |x| >= 1 (exactly
// the reference's rule: gradient 0 at x == +-1). Only a one-byte mask per element is kept for
// backward, never the float input.
#include <tuple>

#include <ATen/Tensor.h>
#include <torch/autograd.h>

namespace bnn {

// Dispatched operators (bnn::binary_activation_forward / _backward), with CPU and CUDA kernels
// registered behind one name so callers never branch on the device.
std::tuple<at::Tensor, at::Tensor> binary_activation_forward(const at::Tensor& x);
at::Tensor binary_activation_backward(const at::Tensor& grad_output, const at::Tensor& mask);

class BinaryActivation : public torch::autograd::Function<BinaryActivation> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs);
};

// Differentiable entry point.
at::Tensor binary_activation(const at::Tensor& x);

// The same function composed from stock ATen ops (hardtanh plus a detached correction), with the
// gradient autograd derives for it. Slower and heavier; kept as the independent reference that the
// fused kernels are tested and benchmarked against.
at::Tensor binary_activation_reference(const at::Tensor& x);

namespace detail {
// Shared by the CPU and CUDA kernels: the checks that run before either touches memory.
void check_activation_input(const at::Tensor& x);
void check_activation_grad(const at::Tensor& grad_output, const at::Tensor& mask);
}  // namespace detail

}  // namespace bnn
