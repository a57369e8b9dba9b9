#include "binarize/binary_weight_cuda.h"
#include "binarize/binary_weight_cuda_kernels.cuh"

#include <vector>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace bnn::cuda {

namespace {

using namespace weight_kernels;

void check_weight(const at::Tensor& w, const char* what) {
  TORCH_CHECK(w.is_cuda() && w.is_non_overlapping_and_dense() && w.dim() >= 2 && w.size(0) > 0 && w.size(0) <= 2147483647 &&
                  w.stride(0) * w.size(0) == w.numel(),
              "binary weight CUDA kernels: ", what, " must be a dense CUDA tensor whose output channels are contiguous blocks");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> binarize_weight(const at::Tensor& weight) {
  check_weight(weight, "the weight");
  TORCH_CHECK(weight.scalar_type() == at::kFloat, "binary weight CUDA kernels: float32 weights only");
  const c10::cuda::CUDAGuard guard(weight.device());
  at::Tensor out = at::empty_like(weight);
  at::Tensor mask = at::empty_like(weight, weight.options().dtype(at::kByte));
  std::vector<int64_t> shape(static_cast<size_t>(weight.dim()), 1);
  shape[0] = weight.size(0);
  at::Tensor alpha = at::empty(shape, weight.options());
  // (A row of no weights gives alpha 0 / 0 = NaN, as the CPU paths' mean of nothing.)
  const int64_t n = weight.stride(0);
  binarize_rows_kernel<<<static_cast<unsigned>(weight.size(0)), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      weight.const_data_ptr<float>(), out.mutable_data_ptr<float>(), mask.mutable_data_ptr<uint8_t>(), alpha.mutable_data_ptr<float>(), n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, mask, alpha};
}

at::Tensor binary_weight_grad(const at::Tensor& grad, const at::Tensor& mask, const at::Tensor& alpha) {
  check_weight(mask, "the mask");
  const c10::cuda::CUDAGuard guard(mask.device());
  const at::Tensor g = grad.scalar_type() == at::kFloat && grad.strides() == mask.strides() && grad.is_non_overlapping_and_dense()
                           ? grad
                           : at::empty_like(mask, grad.options().dtype(at::kFloat)).copy_(grad);
  at::Tensor out = at::empty_like(g);
  const int64_t n = mask.stride(0);
  grad_rows_kernel<<<static_cast<unsigned>(mask.size(0)), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      g.const_data_ptr<float>(), mask.const_data_ptr<uint8_t>(), alpha.const_data_ptr<float>(), out.mutable_data_ptr<float>(), n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace bnn::cuda
