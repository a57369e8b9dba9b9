#pragma once
// The recipe's block: BatchNorm -> binary activation -> 3x3 binary conv -> + shortcut -> PReLU.
// With binary activations off, ReLU replaces the sign (the reference's full-precision path).
// The tricks ablation switches the order (Bi-Real Net's sign -> conv -> BatchNorm), the activation
// after the residual add and the shortcut of the blocks that change shape (see ResNetConfig).
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "nn/activation_probe.h"
#include "nn/batch_norm.h"
#include "nn/binary_conv2d.h"
#include "nn/downsample.h"
#include "nn/prelu.h"
#include "nn/sign_conv2d.h"

namespace bnn::nn {

// BnSignConv (the recipe): BN(in_planes) -> sign -> conv. SignConvBn (Bi-Real Net, Liu et al.
// 2018): sign -> conv -> BN(planes), so the sign sees the block's input, the previous block's
// real-valued output.
enum class BlockOrder { BnSignConv, SignConvBn };
// What follows the residual add (and, in a classic block, the first conv): PReLU (ReActNet /
// Real-to-Binary), ReLU, nothing, or ReActNet's RPReLU (PReLU between two learnable shifts).
enum class BlockActivation { PReLU, ReLU, None, RPReLU };

struct BlockOptions {
  BlockOptions(int64_t in_planes, int64_t planes) : in_planes_(in_planes), planes_(planes) {}
  TORCH_ARG(int64_t, in_planes);
  TORCH_ARG(int64_t, planes);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(bool, binary_activations) = true;
  TORCH_ARG(bool, binary_weights) = false;
  TORCH_ARG(double, bn_momentum) = 0.1;
  TORCH_ARG(BlockOrder, order) = BlockOrder::BnSignConv;
  TORCH_ARG(BlockActivation, activation) = BlockActivation::PReLU;
  TORCH_ARG(DownsampleKind, downsample) = DownsampleKind::AvgPool;
  // The sign's gradient (the binary shortcut's sign included): the recipe's STE or ApproxSign.
  TORCH_ARG(SignGradient, sign_gradient) = SignGradient::Ste;
  // ReActNet's RSign: sign(x - threshold[c]) with a learnable per-channel threshold (init 0).
  TORCH_ARG(bool, learnable_thresholds) = false;
};

// One conv per block, each with its own shortcut (the recipe's double skip uses two of these
// where ResNet-18 has one two-conv block). Children, in registration (= state-dict) order:
// bn, conv, prelu, downsample in the recipe's order; conv, bn, prelu, downsample in Bi-Real's;
// prelu only with the PReLU or RPReLU activation, downsample only where the shape changes. With
// learnable thresholds the block also holds `sign_threshold` [in_planes], a parameter of its own
// (it comes before the children's in state-dict order, as in PyTorch).
class BasicBlockImpl : public torch::nn::Cloneable<BasicBlockImpl> {
 public:
  explicit BasicBlockImpl(BlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  BlockOptions options;
  BatchNorm2d bn{nullptr};
  BinaryConv2d conv{nullptr};
  torch::nn::PReLU prelu{nullptr};
  RPReLU rprelu{nullptr};  // registered as `prelu`
  torch::nn::Sequential downsample{nullptr};
  // RSign's threshold: the sign sees x - sign_threshold[c]. Named for what it is; ReActNet's code
  // calls the same thing `move0.bias`, which says neither that it is learned for the sign nor why.
  torch::Tensor sign_threshold;
  // Set only for the duration of ResNet18Impl::activation_statistics; `name` is the block's path.
  ActivationProbe* probe = nullptr;
  std::string name;
};
TORCH_MODULE(BasicBlock);

// ResNet's two-conv block built from the same parts, with one shortcut (doubleSkip = false).
// Children: bn1, conv1, prelu1, bn2, conv2, prelu2, downsample (recipe's order) or conv1, bn1,
// prelu1, conv2, bn2, prelu2, downsample (Bi-Real's); the activation switch applies to both
// activations. Learnable thresholds add the parameters sign_threshold1 [in_planes] and
// sign_threshold2 [planes], before the children.
class ClassicBasicBlockImpl : public torch::nn::Cloneable<ClassicBasicBlockImpl> {
 public:
  explicit ClassicBasicBlockImpl(BlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  BlockOptions options;
  BatchNorm2d bn1{nullptr};
  BinaryConv2d conv1{nullptr};
  torch::nn::PReLU prelu1{nullptr};
  BatchNorm2d bn2{nullptr};
  BinaryConv2d conv2{nullptr};
  torch::nn::PReLU prelu2{nullptr};
  RPReLU rprelu1{nullptr}, rprelu2{nullptr};  // registered as `prelu1`, `prelu2`
  torch::nn::Sequential downsample{nullptr};
  torch::Tensor sign_threshold1, sign_threshold2;
  ActivationProbe* probe = nullptr;
  std::string name;
};
TORCH_MODULE(ClassicBasicBlock);

}  // namespace bnn::nn
