#include "nn/downsample.h"

#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "nn/batch_norm.h"
#include "nn/binary_conv2d.h"

namespace bnn::nn {

namespace {

// avg_pool2d(kernel k, stride k, no padding, ceil mode, padding not counted). ATen's autograd node
// keeps the pool's input (the shortcut BatchNorm's output, a float tensor with twice the block's
// input channels at full resolution) only for its shape; this node keeps the shape alone. The
// windows do not overlap and cover every input pixel, so the input gradient is the output
// gradient divided by its window's size, spread over the window.
class ShortcutPoolFunction : public torch::autograd::Function<ShortcutPoolFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t k) {
    ctx->saved_data["k"] = k;
    ctx->saved_data["height"] = x.size(2);
    ctx->saved_data["width"] = x.size(3);
    return at::avg_pool2d(x, {k, k}, {k, k}, {0, 0}, /*ceil_mode=*/true, /*count_include_pad=*/false);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const int64_t k = ctx->saved_data["k"].toInt();
    const int64_t H = ctx->saved_data["height"].toInt();
    const int64_t W = ctx->saved_data["width"].toInt();
    const torch::Tensor g = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t N = g.size(0), C = g.size(1), OH = g.size(2), OW = g.size(3);
    torch::Tensor gx = at::empty({N, C, H, W}, g.options().memory_format(at::MemoryFormat::ChannelsLast));
    const float* src = g.const_data_ptr<float>();
    float* dst = gx.mutable_data_ptr<float>();
    at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
      for (int64_t nh = begin; nh < end; ++nh) {
        const int64_t n = nh / H, h = nh % H, oh = h / k;
        const int64_t rows = std::min(oh * k + k, H) - oh * k;
        const float* in = src + ((n * OH + oh) * OW) * C;
        float* out = dst + nh * W * C;
        for (int64_t w = 0; w < W; ++w, out += C) {
          const int64_t ow = w / k;
          const auto count = static_cast<float>(rows * (std::min(ow * k + k, W) - ow * k));
          const float* row = in + ow * C;
          for (int64_t c = 0; c < C; ++c) out[c] = row[c] / count;  // as ATen: gradient / window size
        }
      }
    });
    return {gx, torch::Tensor()};
  }
};

class ShortcutPoolImpl : public torch::nn::Cloneable<ShortcutPoolImpl> {
 public:
  explicit ShortcutPoolImpl(int64_t k) : k_(k) {}
  void reset() override {}

  torch::Tensor forward(const torch::Tensor& x) {
    const bool fast = x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
                      x.is_contiguous(at::MemoryFormat::ChannelsLast) && torch::GradMode::is_enabled() && x.requires_grad();
    if (fast) return ShortcutPoolFunction::apply(x, k_);
    return at::avg_pool2d(x, {k_, k_}, {k_, k_}, {0, 0}, /*ceil_mode=*/true, /*count_include_pad=*/false);
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "torch::nn::AvgPool2d(kernel_size=[" << k_ << ", " << k_ << "], stride=[" << k_ << ", " << k_
           << "], padding=[0, 0], ceil_mode=true, count_include_pad=false)";
  }

 private:
  int64_t k_;
};
TORCH_MODULE(ShortcutPool);

}  // namespace

torch::nn::Sequential make_downsample(int64_t in_channels, int64_t out_channels, int64_t stride, double bn_momentum,
                                      DownsampleKind kind, bool binary_activations, bool binary_weights,
                                      SignGradient sign_gradient) {
  const auto bn = BatchNorm2d(torch::nn::BatchNorm2dOptions(out_channels).momentum(bn_momentum));
  if (kind == DownsampleKind::Strided) {
    return torch::nn::Sequential(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).stride(stride).bias(false)), bn);
  }
  torch::nn::Sequential seq;
  if (kind == DownsampleKind::Binary) {
    seq->push_back(BinaryConv2d(BinaryConv2dOptions(in_channels, out_channels, 1)
                                    .binary_weights(binary_weights)
                                    .input_activation(binary_activations ? InputActivation::Sign : InputActivation::ReLU)
                                    .sign_gradient(sign_gradient)));
  } else {
    seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).stride(1).bias(false)));
  }
  seq->push_back(bn);
  if (stride != 1) seq->push_back(ShortcutPool(stride));
  return seq;
}

}  // namespace bnn::nn
