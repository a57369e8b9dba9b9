#include "nn/sign_conv2d.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "binarize/approx_sign.h"
#include "binarize/binary_activation.h"
#include "core/runtime.h"
#include "core/vectorize.h"
#ifdef BNN_WITH_CUDA
#include "nn/fused_cuda.h"
#include "nn/sign_conv2d_cuda.h"
#endif

namespace bnn::nn {

namespace {

// CPU float32: one byte per input element for backward, bit 0 the straight-through mask
// (-1 < x < 1) and bit 1 the sign (x >= 0), written by the same pass that makes the +-1 input.
constexpr uint8_t kKeep = 1;
constexpr uint8_t kPositive = 2;
constexpr int64_t kGrain = 1 << 14;


BNN_KERNEL(void, sign_forward_f32, (const float* __restrict__ src, float* __restrict__ dst, uint8_t* __restrict__ code,
                                        int64_t n), (src, dst, code, n), {
  for (int64_t i = 0; i < n; ++i) {
    const float v = src[i];
    const bool positive = v >= 0.f;
    dst[i] = v != v ? v : (positive ? 1.f : -1.f);  // NaN stays NaN (as binary_activation)
    code[i] = static_cast<uint8_t>(static_cast<uint8_t>((v > -1.f) & (v < 1.f)) | (static_cast<uint8_t>(positive) << 1));
  }
})

BNN_KERNEL(void, signs_from_code, (const uint8_t* __restrict__ code, float* __restrict__ dst, int64_t n), (code, dst, n), {
  for (int64_t i = 0; i < n; ++i) dst[i] = (code[i] & kPositive) ? 1.f : -1.f;
})

BNN_KERNEL(void, masked_grad, (const float* __restrict__ src, const uint8_t* __restrict__ code, float* __restrict__ dst,
                                   int64_t n), (src, code, dst, n), {
  const uint32_t* __restrict__ in = reinterpret_cast<const uint32_t*>(src);
  uint32_t* __restrict__ out = reinterpret_cast<uint32_t*>(dst);
  // Bit masking (not a multiply) keeps an inf or NaN gradient at exactly 0 where cut.
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] & (0u - static_cast<uint32_t>(code[i] & kKeep));
})

bool packed_path(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.is_non_overlapping_and_dense();
}

// The convolution's dtype: autocast's (bfloat16 or float16) when it is on for x's device, else x's.
// The +-1 input is exact in every floating dtype; the weight is cast here, inside the node, so
// backward (which runs outside autocast) sees the same dtypes as forward.
c10::ScalarType compute_dtype(const torch::Tensor& x) {
  const auto type = x.device().type();
  if ((type == c10::DeviceType::CUDA || type == c10::DeviceType::CPU) && at::autocast::is_autocast_enabled(type)) {
    return at::autocast::get_autocast_dtype(type);
  }
  return x.scalar_type();
}

enum Path : int64_t { kPackedCpu = 0, kCodeCuda = 1, kGeneric = 2 };

class SignConv2dFunction : public torch::autograd::Function<SignConv2dFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               int64_t stride, int64_t padding) {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    const bool packed = packed_path(x) && !at::autocast::is_autocast_enabled(c10::DeviceType::CPU);
    ctx->saved_data["path"] = static_cast<int64_t>(packed ? kPackedCpu : kGeneric);
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(weight.scalar_type());
    if (packed) {
      torch::Tensor signs = at::empty_like(x);
      torch::Tensor code = at::empty_like(x, x.options().dtype(at::kByte));
      const float* src = x.const_data_ptr<float>();
      float* dst = signs.mutable_data_ptr<float>();
      uint8_t* c = code.mutable_data_ptr<uint8_t>();
      at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) { sign_forward_f32(src + b, dst + b, c + b, e - b); });
      torch::Tensor y = torch::conv2d(signs, weight, /*bias=*/{}, stride, padding);
      ctx->save_for_backward({code, weight});
      return y;
    }
    const c10::ScalarType compute = compute_dtype(x);
    const torch::Tensor w = weight.to(compute);
#ifdef BNN_WITH_CUDA
    if (x.is_cuda() && x.is_non_overlapping_and_dense()) {
      auto [signs, code] = cuda::sign_code(x, compute);
      torch::Tensor y = torch::conv2d(signs, w, /*bias=*/{}, stride, padding);
      ctx->saved_data["path"] = static_cast<int64_t>(kCodeCuda);
      ctx->save_for_backward({code, w});
      return y;
    }
#endif
    auto [signs, mask] = binary_activation_forward(x);
    torch::Tensor y = torch::conv2d(signs.to(compute), w, /*bias=*/{}, stride, padding);
    ctx->save_for_backward({x.ge(0), mask, w});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    const int64_t path = ctx->saved_data["path"].toInt();
    const auto x_dtype = static_cast<c10::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    const auto w_dtype = static_cast<c10::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    // Gradients leave in the dtypes the inputs came in (float32 master weights under autocast).
    auto in_dtype = [](const torch::Tensor& g, c10::ScalarType t) { return g.defined() ? g.to(t) : g; };
#ifdef BNN_WITH_CUDA
    if (path == kCodeCuda) {
      const torch::Tensor& code = saved[0];
      const torch::Tensor& w = saved[1];
      torch::Tensor signs = cuda::signs_from_code(code, w.scalar_type());
      auto [grad_signs, grad_weight, unused] = at::convolution_backward(
          grads[0].to(w.scalar_type()), signs, w, std::nullopt, {stride, stride}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
          {ctx->needs_input_grad(0), ctx->needs_input_grad(1), false});
      signs.reset();
      torch::Tensor grad_x = grad_signs.defined() ? cuda::masked_grad(grad_signs, code) : torch::Tensor();
      return {in_dtype(grad_x, x_dtype), in_dtype(grad_weight, w_dtype), torch::Tensor(), torch::Tensor()};
    }
#endif
    if (path == kPackedCpu) {
      const torch::Tensor& code = saved[0];
      const torch::Tensor& weight = saved[1];
      const int64_t n = code.numel();
      // The +-1 input rebuilt exactly from its sign bit.
      torch::Tensor signs = at::empty_like(code, weight.options());
      {
        const uint8_t* c = code.const_data_ptr<uint8_t>();
        float* dst = signs.mutable_data_ptr<float>();
        at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { signs_from_code(c + b, dst + b, e - b); });
      }
      auto [grad_signs, grad_weight, unused] = at::convolution_backward(
          grads[0], signs, weight, std::nullopt, {stride, stride}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
          {ctx->needs_input_grad(0), ctx->needs_input_grad(1), false});
      signs.reset();
      torch::Tensor grad_x;
      if (grad_signs.defined()) {
        const torch::Tensor g = grad_signs.strides() == code.strides() && grad_signs.is_non_overlapping_and_dense()
                                    ? grad_signs
                                    : at::empty_like(code, grad_signs.options()).copy_(grad_signs);
        grad_x = at::empty_like(g);
        const float* src = g.const_data_ptr<float>();
        const uint8_t* c = code.const_data_ptr<uint8_t>();
        float* dst = grad_x.mutable_data_ptr<float>();
        at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { masked_grad(src + b, c + b, dst + b, e - b); });
      }
      return {grad_x, grad_weight, torch::Tensor(), torch::Tensor()};
    }
    const torch::Tensor& positive = saved[0];
    const torch::Tensor& mask = saved[1];
    const torch::Tensor& weight = saved[2];
    const torch::Tensor signs = torch::where(positive, torch::ones({}, weight.options()), -torch::ones({}, weight.options()));
    auto [grad_signs, grad_weight, unused] = at::convolution_backward(
        grads[0].to(weight.scalar_type()), signs, weight, std::nullopt, {stride, stride}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), false});
    torch::Tensor grad_x = grad_signs.defined() ? binary_activation_backward(grad_signs, mask) : torch::Tensor();
    return {in_dtype(grad_x, x_dtype), in_dtype(grad_weight, w_dtype), torch::Tensor(), torch::Tensor()};
  }
};

// ApproxSign needs |x| in backward, which the one-byte code cannot give: this node keeps the float
// input itself (4 bytes per element where the code keeps 1) and rebuilds the signs from it. Composed
// from ATen ops, so it runs on any device and dtype; under autocast the convolution runs in
// autocast's dtype as above.
class ApproxSignConv2dFunction : public torch::autograd::Function<ApproxSignConv2dFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               int64_t stride, int64_t padding) {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(weight.scalar_type());
    const c10::ScalarType compute = compute_dtype(x);
    const torch::Tensor w = weight.to(compute);
    torch::Tensor y = torch::conv2d(approx_sign_signs(x).to(compute), w, /*bias=*/{}, stride, padding);
    ctx->save_for_backward({x, w});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& w = saved[1];
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    const auto w_dtype = static_cast<c10::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    torch::Tensor signs = approx_sign_signs(x).to(w.scalar_type());
    auto [grad_signs, grad_weight, unused] = at::convolution_backward(
        grads[0].to(w.scalar_type()), signs, w, std::nullopt, {stride, stride}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), false});
    signs.reset();
    torch::Tensor grad_x = grad_signs.defined() ? approx_sign_backward(grad_signs.to(x.scalar_type()), x) : torch::Tensor();
    if (grad_weight.defined()) grad_weight = grad_weight.to(w_dtype);
    return {grad_x, grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

// BatchNorm -> sign -> conv (bn_sign_conv2d): the kernels of nn/fused_cuda.h on CUDA, and the same
// contracts in ATen ops on the CPU (FusionFlags::cpu_reference), which tests compare with the
// unfused modules where no GPU is.
namespace fused {

torch::Tensor per_channel(const torch::Tensor& t) { return t.view({1, -1, 1, 1}); }

// The batch's {mean, 1 / sqrt(biased variance + eps)} per channel (float32), blending them into the
// running statistics (unbiased variance) as torch::nn::BatchNorm2d's training forward does: ATen's
// batch_norm_update_stats, one Welford pass on CUDA (channels-last, any floating dtype), the same
// update formula on the CPU.
std::pair<torch::Tensor, torch::Tensor> batch_stats(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn) {
  auto [mean, var] = at::batch_norm_update_stats(x, bn.running_mean, bn.running_var, bn.options.momentum().value());
  bn.num_batches_tracked.add_(1);
  return {mean, var.add(bn.options.eps()).rsqrt_()};
}

std::pair<torch::Tensor, torch::Tensor> sign_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                                                     const torch::Tensor& bias, c10::ScalarType dtype) {
#ifdef BNN_WITH_CUDA
  if (x.is_cuda()) return cuda::bn_sign_forward(x, mean, scale, bias, dtype);
#endif
  const torch::Tensor v = (x.to(torch::kFloat) - per_channel(mean)) * per_channel(scale) + per_channel(bias);
  const torch::Tensor positive = v.ge(0);
  torch::Tensor signs = torch::where(v.isnan(), v, positive.to(torch::kFloat).mul(2).sub(1)).to(dtype);
  torch::Tensor code = (v.gt(-1) & v.lt(1)).to(torch::kByte).bitwise_or(positive.to(torch::kByte).mul(kPositive));
  return {signs, code};
}

torch::Tensor signs_of(const torch::Tensor& code, c10::ScalarType dtype) {
#ifdef BNN_WITH_CUDA
  if (code.is_cuda()) return cuda::signs_from_code(code, dtype);
#endif
  return code.bitwise_and(kPositive).ne(0).to(torch::kFloat).mul(2).sub(1).to(dtype);
}

torch::Tensor masked(const torch::Tensor& grad, const torch::Tensor& code) {
  return torch::where(code.bitwise_and(kKeep).ne(0), grad.to(torch::kFloat), torch::zeros({}, grad.options().dtype(torch::kFloat)));
}

std::pair<torch::Tensor, torch::Tensor> grad_sums(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x,
                                                  const torch::Tensor& mean) {
#ifdef BNN_WITH_CUDA
  if (x.is_cuda()) return cuda::bn_sign_grad_sums(grad, code, x, mean);
#endif
  const torch::Tensor dy = masked(grad, code);
  return {dy.sum({0, 2, 3}), (dy * (x.to(torch::kFloat) - per_channel(mean))).sum({0, 2, 3})};
}

torch::Tensor grad_input(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x, const torch::Tensor& mean,
                         const torch::Tensor& scale, const torch::Tensor& mean_dy, const torch::Tensor& coef) {
#ifdef BNN_WITH_CUDA
  if (x.is_cuda()) return cuda::bn_sign_grad_input(grad, code, x, mean, scale, mean_dy, coef);
#endif
  const torch::Tensor dy = masked(grad, code);
  return ((dy - per_channel(mean_dy) - (x.to(torch::kFloat) - per_channel(mean)) * per_channel(coef)) * per_channel(scale))
      .to(x.scalar_type());
}

}  // namespace fused

// x, BatchNorm's weight and bias, the conv weight; mean and invstd are the batch statistics (no
// gradient flows into them: backward's formula already accounts for them, as BatchNorm's does).
class BnSignConv2dFunction : public torch::autograd::Function<BnSignConv2dFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& bn_weight,
                               const torch::Tensor& bn_bias, const torch::Tensor& weight, const torch::Tensor& mean,
                               const torch::Tensor& invstd, int64_t stride, int64_t padding) {
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(weight.scalar_type());
    const c10::ScalarType compute = compute_dtype(x);
    const torch::Tensor w = weight.to(compute);
    auto [signs, code] = fused::sign_forward(x, mean, invstd * bn_weight, bn_bias, compute);
    torch::Tensor y = torch::conv2d(signs, w, /*bias=*/{}, stride, padding);
    ctx->save_for_backward({x, bn_weight, mean, invstd, code, w});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& bn_weight = saved[1];
    const torch::Tensor& mean = saved[2];
    const torch::Tensor& invstd = saved[3];
    const torch::Tensor& code = saved[4];
    const torch::Tensor& w = saved[5];
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    const auto w_dtype = static_cast<c10::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const bool need_x = ctx->needs_input_grad(0), need_gamma = ctx->needs_input_grad(1), need_beta = ctx->needs_input_grad(2);
    torch::Tensor signs = fused::signs_of(code, w.scalar_type());
    auto [grad_signs, grad_weight, unused] = at::convolution_backward(
        grads[0].to(w.scalar_type()), signs, w, std::nullopt, {stride, stride}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
        {need_x || need_gamma || need_beta, ctx->needs_input_grad(3), false});
    signs.reset();
    torch::Tensor grad_x, grad_gamma, grad_beta;
    if (grad_signs.defined()) {
      const torch::Tensor g = grad_signs.contiguous(at::MemoryFormat::ChannelsLast);
      auto [sum_dy, sum_dy_xmu] = fused::grad_sums(g, code, x, mean);
      if (need_gamma) grad_gamma = sum_dy_xmu * invstd;
      if (need_beta) grad_beta = sum_dy;
      if (need_x) {
        const double n = static_cast<double>(x.numel() / x.size(1));
        grad_x = fused::grad_input(g, code, x, mean, invstd * bn_weight, sum_dy / n, invstd * invstd * sum_dy_xmu / n);
      }
    }
    if (grad_weight.defined()) grad_weight = grad_weight.to(w_dtype);
    return {grad_x, grad_gamma, grad_beta, grad_weight, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool bn_sign_fusable(const torch::Tensor& x, const torch::nn::BatchNorm2dImpl& bn, bool synced) {
  const FusionFlags flags = fusion_flags();
  const bool device_ok = x.is_cuda() ? flags.cuda : (x.device().is_cpu() && flags.cpu_reference);
  if (!device_ok || synced || !bn.is_training()) return false;
  const auto& o = bn.options;
  if (!o.affine() || !o.track_running_stats() || !o.momentum().has_value()) return false;
  const auto t = x.scalar_type();
  if (x.dim() != 4 || !(t == torch::kFloat || t == torch::kHalf || t == torch::kBFloat16)) return false;
  if (!x.is_contiguous(at::MemoryFormat::ChannelsLast) || x.size(1) != bn.weight.size(0)) return false;
  // One value per channel is BatchNorm's own error: the unfused module raises it.
  if (x.numel() / x.size(1) <= 1) return false;
  return bn.weight.scalar_type() == torch::kFloat && bn.running_mean.scalar_type() == torch::kFloat &&
         bn.running_var.scalar_type() == torch::kFloat && bn.weight.device() == x.device();
}

torch::Tensor bn_sign_conv2d(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& weight, int64_t stride,
                             int64_t padding) {
  torch::Tensor mean, invstd;
  {
    const torch::NoGradGuard no_grad;
    std::tie(mean, invstd) = fused::batch_stats(x, bn);
  }
  count_fused_bn_sign();
  return BnSignConv2dFunction::apply(x, bn.weight, bn.bias, weight, mean, invstd, stride, padding);
}

torch::Tensor sign_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride, int64_t padding,
                          SignGradient gradient) {
  if (gradient == SignGradient::ApproxSign) return ApproxSignConv2dFunction::apply(x, weight, stride, padding);
  return SignConv2dFunction::apply(x, weight, stride, padding);
}

}  // namespace bnn::nn
