#include "nn/prelu.h"

#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace bnn::nn {

namespace {

// Dense 4-D float32 layouts the fused kernels handle; anything else goes to ATen.
enum class Layout { Nchw, Nhwc, Other };

Layout layout_of(const torch::Tensor& x) {
  if (x.dim() != 4 || x.scalar_type() != torch::kFloat || !x.device().is_cpu()) return Layout::Other;
  if (x.is_contiguous()) return Layout::Nchw;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return Layout::Nhwc;
  return Layout::Other;
}

torch::Tensor forward_cpu(const torch::Tensor& x, const torch::Tensor& weight, Layout layout) {
  torch::Tensor y = torch::empty_like(x);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const float* __restrict__ src = x.const_data_ptr<float>();
  const float* __restrict__ a = weight.const_data_ptr<float>();
  float* __restrict__ dst = y.mutable_data_ptr<float>();
  if (layout == Layout::Nhwc) {
    at::parallel_for(0, N * HW, 256, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* s = src + p * C;
        float* d = dst + p * C;
        for (int64_t c = 0; c < C; ++c) d[c] = s[c] > 0.f ? s[c] : a[c] * s[c];
      }
    });
  } else {
    at::parallel_for(0, N * C, 4, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const float slope = a[nc % C];
        const float* s = src + nc * HW;
        float* d = dst + nc * HW;
        for (int64_t i = 0; i < HW; ++i) d[i] = s[i] > 0.f ? s[i] : slope * s[i];
      }
    });
  }
  return y;
}

// Returns {grad_x, grad_weight}. grad must be in x's layout (the caller ensures it).
std::pair<torch::Tensor, torch::Tensor> backward_cpu(const torch::Tensor& grad, const torch::Tensor& x,
                                                     const torch::Tensor& weight, Layout layout) {
  torch::Tensor gx = torch::empty_like(x);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const float* __restrict__ g = grad.const_data_ptr<float>();
  const float* __restrict__ s = x.const_data_ptr<float>();
  const float* __restrict__ a = weight.const_data_ptr<float>();
  float* __restrict__ dx = gx.mutable_data_ptr<float>();
  const int threads = at::get_num_threads();
  // Per-thread partial sums in double: the slope gradient sums up to N*H*W terms per channel.
  std::vector<double> partial(static_cast<size_t>(threads) * C, 0.0);
  if (layout == Layout::Nhwc) {
    at::parallel_for(0, N * HW, 256, [&](int64_t begin, int64_t end) {
      double* acc = partial.data() + static_cast<size_t>(at::get_thread_num()) * C;
      for (int64_t p = begin; p < end; ++p) {
        const float* gp = g + p * C;
        const float* sp = s + p * C;
        float* dp = dx + p * C;
        for (int64_t c = 0; c < C; ++c) {
          const bool pos = sp[c] > 0.f;
          dp[c] = pos ? gp[c] : a[c] * gp[c];
          acc[c] += pos ? 0.0 : static_cast<double>(gp[c] * sp[c]);
        }
      }
    });
  } else {
    at::parallel_for(0, N * C, 4, [&](int64_t begin, int64_t end) {
      double* acc = partial.data() + static_cast<size_t>(at::get_thread_num()) * C;
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t c = nc % C;
        const float slope = a[c];
        const float* gp = g + nc * HW;
        const float* sp = s + nc * HW;
        float* dp = dx + nc * HW;
        float sum = 0.f;
        for (int64_t i = 0; i < HW; ++i) {
          const bool pos = sp[i] > 0.f;
          dp[i] = pos ? gp[i] : slope * gp[i];
          sum += pos ? 0.f : gp[i] * sp[i];
        }
        acc[c] += sum;
      }
    });
  }
  torch::Tensor gw = torch::zeros_like(weight);
  float* w = gw.mutable_data_ptr<float>();
  for (int t = 0; t < threads; ++t) {
    for (int64_t c = 0; c < C; ++c) w[c] += static_cast<float>(partial[static_cast<size_t>(t) * C + c]);
  }
  return {gx, gw};
}

}  // namespace

torch::Tensor PReLUFunction::forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight) {
  ctx->save_for_backward({x, weight});
  return forward_cpu(x, weight.contiguous(), layout_of(x));
}

torch::autograd::tensor_list PReLUFunction::backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
  const auto saved = ctx->get_saved_variables();
  const torch::Tensor& x = saved[0];
  const Layout layout = layout_of(x);
  const auto mf = layout == Layout::Nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto [gx, gw] = backward_cpu(grads[0].contiguous(mf), x, saved[1].contiguous(), layout);
  return {gx, gw};
}

torch::Tensor prelu(const torch::Tensor& x, const torch::Tensor& weight) {
  if (layout_of(x) == Layout::Other || weight.dim() != 1 || weight.size(0) != x.size(1) || weight.scalar_type() != torch::kFloat) {
    return torch::prelu(x, weight);
  }
  return PReLUFunction::apply(x, weight);
}

}  // namespace bnn::nn
