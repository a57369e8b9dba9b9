#include "nn/prelu.h"
#include "core/runtime.h"
#include "core/vectorize.h"
#ifdef BNN_WITH_CUDA
#include "nn/fused_cuda.h"
#endif

#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
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

// Branch-free loops (the sign of an activation is a coin flip, so branches mispredict), compiled
// for AVX2 / AVX-512 besides the baseline and picked at run time (see BNN_KERNEL for why they
// vectorise on every path).

// Channels-last: `pixels` rows of C contiguous channels.
BNN_KERNEL(void, forward_rows, (const float* __restrict__ s, const float* __restrict__ a, float* __restrict__ d,
                                    int64_t pixels, int64_t C), (s, a, d, pixels, C), {
  for (int64_t p = 0; p < pixels; ++p, s += C, d += C) {
    for (int64_t c = 0; c < C; ++c) {
      const float x = s[c], ax = a[c] * x;
      d[c] = x > 0.f ? x : ax;
    }
  }
})

// y = prelu(u + v): the block's residual sum and its activation in one pass.
BNN_KERNEL(void, forward_rows_add, (const float* __restrict__ u, const float* __restrict__ v, const float* __restrict__ a,
                                        float* __restrict__ d, int64_t pixels, int64_t C), (u, v, a, d, pixels, C), {
  for (int64_t p = 0; p < pixels; ++p, u += C, v += C, d += C) {
    for (int64_t c = 0; c < C; ++c) {
      const float s = u[c] + v[c], as = a[c] * s;
      d[c] = s > 0.f ? s : as;
    }
  }
})

// Also adds sum over the rows of g*s where s <= 0 into acc[C] (float: at most kRows terms each).
// `s` is the input x, or the output y when every slope is positive (then y > 0 exactly where x > 0,
// and the sums over y are divided by the slope afterwards).
BNN_KERNEL(void, backward_rows, (const float* __restrict__ g, const float* __restrict__ s, const float* __restrict__ a,
                                     float* __restrict__ dx, float* __restrict__ acc, int64_t pixels, int64_t C), (g, s, a, dx, acc, pixels, C), {
  for (int64_t p = 0; p < pixels; ++p, g += C, s += C, dx += C) {
    for (int64_t c = 0; c < C; ++c) {
      const float gc = g[c], sc = s[c], ag = a[c] * gc, gs = gc * sc;
      const bool pos = sc > 0.f;
      dx[c] = pos ? gc : ag;
      acc[c] += pos ? 0.f : gs;
    }
  }
})

// Contiguous (NCHW): one plane of n values with one slope.
BNN_KERNEL(void, forward_plane, (const float* __restrict__ s, float slope, float* __restrict__ d, int64_t n), (s, slope, d, n), {
  for (int64_t i = 0; i < n; ++i) {
    const float x = s[i], ax = slope * x;
    d[i] = x > 0.f ? x : ax;
  }
})

BNN_KERNEL(double, backward_plane, (const float* __restrict__ g, const float* __restrict__ s, float slope,
                                        float* __restrict__ dx, int64_t n), (g, s, slope, dx, n), {
  float lanes[16] = {0};  // independent partial sums, so the reduction vectorises without -ffast-math
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i], si = s[i], ag = slope * gi, gs = gi * si;
    const bool pos = si > 0.f;
    dx[i] = pos ? gi : ag;
    lanes[i & 15] += pos ? 0.f : gs;
  }
  double sum = 0;
  for (float v : lanes) sum += v;
  return sum;
})

constexpr int64_t kRows = 256;  // rows per float partial sum before it is flushed into a double

torch::Tensor forward_cpu(const torch::Tensor& x, const torch::Tensor& weight, Layout layout) {
  torch::Tensor y = torch::empty_like(x);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const float* src = x.const_data_ptr<float>();
  const float* a = weight.const_data_ptr<float>();
  float* dst = y.mutable_data_ptr<float>();
  if (layout == Layout::Nhwc) {
    at::parallel_for(0, N * HW, kRows, [&](int64_t begin, int64_t end) {
      forward_rows(src + begin * C, a, dst + begin * C, end - begin, C);
    });
  } else {
    at::parallel_for(0, N * C, 4, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) forward_plane(src + nc * HW, a[nc % C], dst + nc * HW, HW);
    });
  }
  return y;
}

// Returns {grad_x, grad_weight}. grad must be in x's layout (the caller ensures it).
std::pair<torch::Tensor, torch::Tensor> backward_cpu(const torch::Tensor& grad, const torch::Tensor& x,
                                                     const torch::Tensor& weight, Layout layout) {
  torch::Tensor gx = torch::empty_like(x);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const float* g = grad.const_data_ptr<float>();
  const float* s = x.const_data_ptr<float>();
  const float* a = weight.const_data_ptr<float>();
  float* dx = gx.mutable_data_ptr<float>();
  const int threads = at::get_num_threads();
  // Per-thread partial sums in double: the slope gradient sums up to N*H*W terms per channel.
  std::vector<double> partial(static_cast<size_t>(threads) * C, 0.0);
  if (layout == Layout::Nhwc) {
    at::parallel_for(0, N * HW, kRows, [&](int64_t begin, int64_t end) {
      double* total = partial.data() + static_cast<size_t>(at::get_thread_num()) * C;
      std::vector<float> acc(C);
      for (int64_t p = begin; p < end; p += kRows) {
        const int64_t rows = std::min(kRows, end - p);
        std::fill(acc.begin(), acc.end(), 0.f);
        backward_rows(g + p * C, s + p * C, a, dx + p * C, acc.data(), rows, C);
        for (int64_t c = 0; c < C; ++c) total[c] += acc[c];
      }
    });
  } else {
    at::parallel_for(0, N * C, 4, [&](int64_t begin, int64_t end) {
      double* total = partial.data() + static_cast<size_t>(at::get_thread_num()) * C;
      for (int64_t nc = begin; nc < end; ++nc) {
        total[nc % C] += backward_plane(g + nc * HW, s + nc * HW, a[nc % C], dx + nc * HW, HW);
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

namespace {

bool all_slopes_positive(const torch::Tensor& weight) {
  const float* a = weight.const_data_ptr<float>();
  for (int64_t c = 0; c < weight.numel(); ++c) {
    if (!(a[c] > 0.f && a[c] < std::numeric_limits<float>::infinity())) return false;
  }
  return true;
}

}  // namespace

torch::Tensor PReLUFunction::forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight) {
  const torch::Tensor a = weight.contiguous();
  torch::Tensor y = forward_cpu(x, a, layout_of(x));
  // With every slope positive, y > 0 exactly where x > 0 and x = y / a elsewhere, so backward can
  // work from the output, which the next layer (BatchNorm, pooling, a 1x1 conv) saves anyway: the
  // block's input-sized float tensor is not kept alive a second time.
  const bool from_output = all_slopes_positive(a);
  ctx->save_for_backward({from_output ? y : x, weight});
  ctx->saved_data["from_output"] = from_output;
  return y;
}

torch::autograd::tensor_list PReLUFunction::backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
  const auto saved = ctx->get_saved_variables();
  const torch::Tensor& s = saved[0];
  const Layout layout = layout_of(s);
  const auto mf = layout == Layout::Nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const torch::Tensor a = saved[1].contiguous();
  auto [gx, gw] = backward_cpu(grads[0].contiguous(mf), s, a, layout);
  if (ctx->saved_data["from_output"].toBool()) gw.div_(a);  // sum(g * y) / a = sum(g * x) over x <= 0
  return {gx, gw};
}

torch::Tensor PReLUAddFunction::forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u, const torch::Tensor& v,
                                        const torch::Tensor& weight) {
  const torch::Tensor a = weight.contiguous();
  torch::Tensor y = torch::empty_like(u);
  const int64_t C = u.size(1);
  const float* pu = u.const_data_ptr<float>();
  const float* pv = v.const_data_ptr<float>();
  const float* pa = a.const_data_ptr<float>();
  float* dst = y.mutable_data_ptr<float>();
  at::parallel_for(0, u.numel() / C, kRows, [&](int64_t begin, int64_t end) {
    forward_rows_add(pu + begin * C, pv + begin * C, pa, dst + begin * C, end - begin, C);
  });
  ctx->save_for_backward({y, weight});  // every slope is positive (prelu_add checks): see PReLUFunction
  return y;
}

torch::autograd::tensor_list PReLUAddFunction::backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
  const auto saved = ctx->get_saved_variables();
  const torch::Tensor& y = saved[0];
  const torch::Tensor a = saved[1].contiguous();
  auto [gx, gw] = backward_cpu(grads[0].contiguous(at::MemoryFormat::ChannelsLast), y, a, Layout::Nhwc);
  gw.div_(a);
  return {gx, gx, gw};  // d(u + v)/du = d(u + v)/dv = 1, as aten::add's backward (which also shares the tensor)
}

#ifdef BNN_WITH_CUDA
namespace {

// CUDA (nn/fused_cuda.h): one pass forward, and backward's input and slope gradients in one pass
// with per-block sums (ATen's prelu backward writes a full-size per-element slope gradient and
// reduces it afterwards). The pre-activation s is saved, in the activation's dtype, as ATen's
// prelu saves its input: no sync to check the slopes' signs, which working from y would need.
bool cuda_fusable(const torch::Tensor& u, const torch::Tensor* v, const torch::Tensor& weight) {
  if (!u.is_cuda() || !fusion_flags().cuda) return false;
  const auto t = u.scalar_type();
  // Under autocast torch::prelu runs in autocast's dtype: a float32 input there (RPReLU's shifted
  // input) takes ATen's path, which casts it, rather than staying float32 here.
  if (at::autocast::is_autocast_enabled(c10::DeviceType::CUDA) && t != at::autocast::get_autocast_dtype(c10::DeviceType::CUDA)) return false;
  if (u.dim() != 4 || !(t == torch::kFloat || t == torch::kHalf || t == torch::kBFloat16) ||
      !u.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    return false;
  }
  if (v && (v->sizes() != u.sizes() || v->scalar_type() != t || v->device() != u.device() ||
            !v->is_contiguous(at::MemoryFormat::ChannelsLast))) {
    return false;
  }
  return weight.dim() == 1 && weight.size(0) == u.size(1) && weight.scalar_type() == torch::kFloat && weight.device() == u.device();
}

torch::Tensor grad_like(const torch::Tensor& grad, const torch::Tensor& s) {
  return grad.to(s.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
}

class PReLUCudaFunction : public torch::autograd::Function<PReLUCudaFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight) {
    auto [y, s] = cuda::prelu_forward(x, torch::Tensor(), weight.contiguous());
    ctx->save_for_backward({s, weight});
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [gx, gw] = cuda::prelu_backward(grad_like(grads[0], saved[0]), saved[0], saved[1].contiguous());
    return {gx, gw};
  }
};

class PReLUAddCudaFunction : public torch::autograd::Function<PReLUAddCudaFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u, const torch::Tensor& v,
                               const torch::Tensor& weight) {
    auto [y, s] = cuda::prelu_forward(u, v, weight.contiguous());
    ctx->save_for_backward({s, weight});
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [gx, gw] = cuda::prelu_backward(grad_like(grads[0], saved[0]), saved[0], saved[1].contiguous());
    return {gx, gx, gw};
  }
};

}  // namespace
#endif

torch::Tensor prelu_add(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& weight) {
#ifdef BNN_WITH_CUDA
  if (cuda_fusable(u, &v, weight)) {
    count_fused_prelu();
    return PReLUAddCudaFunction::apply(u, v, weight);
  }
#endif
  const bool fused = layout_of(u) == Layout::Nhwc && layout_of(v) == Layout::Nhwc && u.sizes() == v.sizes() && weight.dim() == 1 &&
                     weight.size(0) == u.size(1) && weight.scalar_type() == torch::kFloat && weight.device().is_cpu() &&
                     all_slopes_positive(weight.contiguous());
  if (!fused) return bnn::nn::prelu(u + v, weight);  // (not fused: other dtypes, layouts or devices)
  return PReLUAddFunction::apply(u, v, weight);
}

torch::Tensor prelu(const torch::Tensor& x, const torch::Tensor& weight) {
#ifdef BNN_WITH_CUDA
  if (cuda_fusable(x, nullptr, weight)) {
    count_fused_prelu();
    return PReLUCudaFunction::apply(x, weight);
  }
#endif
  if (layout_of(x) == Layout::Other || weight.dim() != 1 || weight.size(0) != x.size(1) || weight.scalar_type() != torch::kFloat) {
    // In x's dtype: under autocast x is bfloat16 or float16 while the slopes stay float32, and
    // prelu does not promote (the cast is differentiable, so the slopes' gradient comes back float32).
    return torch::prelu(x, weight.scalar_type() == x.scalar_type() ? weight : weight.to(x.scalar_type()));
  }
  return PReLUFunction::apply(x, weight);
}

RPReLUImpl::RPReLUImpl(int64_t channels_) : channels(channels_) { reset(); }

void RPReLUImpl::reset() {
  shift_in = register_parameter("shift_in", torch::zeros({channels}));
  weight = register_parameter("weight", torch::full({channels}, 0.25));
  shift_out = register_parameter("shift_out", torch::zeros({channels}));
}

torch::Tensor RPReLUImpl::forward(const torch::Tensor& x) {
  return nn::prelu(x - shift_in.view({1, -1, 1, 1}), weight) + shift_out.view({1, -1, 1, 1});
}

void RPReLUImpl::pretty_print(std::ostream& stream) const { stream << "bnn::RPReLU(num_parameters=" << channels << ")"; }

}  // namespace bnn::nn
