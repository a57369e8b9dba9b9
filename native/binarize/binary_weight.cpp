#include "binarize/binary_weight.h"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/errors.h"
#include "core/runtime.h"
#include "core/vectorize.h"
#ifdef BNN_WITH_CUDA
#include "binarize/binary_weight_cuda.h"
#endif

namespace bnn {

at::Tensor binary_weight_scale(const at::Tensor& weight) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> reduce_dims;
  for (int64_t d = 1; d < weight.dim(); ++d) reduce_dims.push_back(d);
  return weight.abs().mean(reduce_dims, /*keepdim=*/true);
}

namespace {

// CPU float32 weights whose output channels are contiguous blocks (plain or channels-last): the
// scale, sign * scale and the straight-through mask in two passes over each channel, instead of
// the eight elementwise ATen ops (abs, mean, ge, where, isnan, where, abs, le) of the generic path.
bool fast_path(const at::Tensor& w) {
  return w.device().is_cpu() && w.scalar_type() == at::kFloat && w.is_non_overlapping_and_dense() && w.size(0) > 0 &&
         w.stride(0) * w.size(0) == w.numel();
}


BNN_KERNEL(void, binarize_row, (const float* __restrict__ w, float alpha, float* __restrict__ out, uint8_t* __restrict__ keep,
                                    int64_t n), (w, alpha, out, keep, n), {
  for (int64_t i = 0; i < n; ++i) {
    const float v = w[i];
    out[i] = v != v ? v : (v >= 0.f ? alpha : -alpha);  // NaN weights stay NaN so a diverged run is visible
    keep[i] = static_cast<uint8_t>((v <= 1.f) & (v >= -1.f));  // |v| <= 1, false for NaN
  }
})

BNN_KERNEL(void, grad_row, (const float* __restrict__ g, const uint8_t* __restrict__ keep, float alpha, float* __restrict__ out,
                                int64_t n), (g, keep, alpha, out, n), {
  for (int64_t i = 0; i < n; ++i) {
    const float ga = g[i] * alpha;  // unconditional, then selected: vectorises without AVX-512 masks
    out[i] = keep[i] ? ga : 0.f;
  }
})

}  // namespace

at::Tensor BinaryWeight::forward(torch::autograd::AutogradContext* ctx, const at::Tensor& weight) {
#ifdef BNN_WITH_CUDA
  // (binary_weight_cuda.h's layout: dense, output channels contiguous blocks, one block each.)
  if (weight.is_cuda() && weight.scalar_type() == at::kFloat && weight.dim() >= 2 && weight.is_non_overlapping_and_dense() &&
      weight.size(0) > 0 && weight.size(0) <= 2147483647 && weight.stride(0) * weight.size(0) == weight.numel() && fusion_flags().cuda) {
    auto [out, mask, alpha] = cuda::binarize_weight(weight);
    ctx->save_for_backward({mask, alpha});
    return out;
  }
#endif
  if (fast_path(weight)) {
    const int64_t rows = weight.size(0), n = weight.stride(0);
    at::Tensor out = at::empty_like(weight);
    at::Tensor mask = at::empty_like(weight, weight.options().dtype(at::kByte));
    std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
    shape[0] = rows;
    at::Tensor alpha = at::empty(shape, weight.options());
    const float* w = weight.const_data_ptr<float>();
    float* o = out.mutable_data_ptr<float>();
    uint8_t* k = mask.mutable_data_ptr<uint8_t>();
    float* a = alpha.mutable_data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* row = w + r * n;
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += std::fabs(row[i]);
        a[r] = static_cast<float>(sum / static_cast<double>(n));
        binarize_row(row, a[r], o + r * n, k + r * n, n);
      }
    });
    ctx->save_for_backward({mask, alpha});
    return out;
  }
  const at::Tensor alpha = binary_weight_scale(weight);
  // where(W >= 0, alpha, -alpha): sign and scale in one elementwise pass over the weight.
  at::Tensor out = at::where(weight >= 0, alpha, -alpha);
  // NaN weights stay NaN so a diverged run is visible.
  out = at::where(weight.isnan(), weight, out);
  const at::Tensor mask = weight.abs().le(1);
  ctx->save_for_backward({mask, alpha});
  return out;
}

torch::autograd::tensor_list BinaryWeight::backward(torch::autograd::AutogradContext* ctx,
                                                    torch::autograd::tensor_list grad_outputs) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& mask = saved[0];
  const at::Tensor& alpha = saved[1];
  const at::Tensor& grad = grad_outputs[0];
#ifdef BNN_WITH_CUDA
  if (mask.scalar_type() == at::kByte && mask.is_cuda()) return {cuda::binary_weight_grad(grad, mask, alpha)};
#endif
  if (mask.scalar_type() == at::kByte) {  // the fast path's mask
    const at::Tensor g = grad.scalar_type() == at::kFloat && grad.strides() == mask.strides() && grad.is_non_overlapping_and_dense()
                             ? grad
                             : at::empty_like(mask, grad.options().dtype(at::kFloat)).copy_(grad);
    at::Tensor out = at::empty_like(g);
    const int64_t rows = mask.size(0), n = mask.stride(0);
    const float* src = g.const_data_ptr<float>();
    const uint8_t* k = mask.const_data_ptr<uint8_t>();
    const float* a = alpha.const_data_ptr<float>();
    float* dst = out.mutable_data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) grad_row(src + r * n, k + r * n, a[r], dst + r * n, n);
    });
    return {out};
  }
  return {at::where(mask, grad * alpha, at::zeros({}, grad.options()))};
}

at::Tensor binarize_weight(const at::Tensor& weight) {
  if (weight.dim() < 2) fail(ErrorKind::InvalidArgument, "binarize_weight expects a weight of rank >= 2");
  if (!at::isFloatingType(weight.scalar_type())) fail(ErrorKind::InvalidType, "binarize_weight expects floating-point weights");
  return BinaryWeight::apply(weight);
}

}  // namespace bnn
