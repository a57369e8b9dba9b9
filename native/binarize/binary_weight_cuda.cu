#include "binarize/binary_weight_cuda.h"

#include <vector>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace bnn::cuda {

namespace {

constexpr int kThreads = 256;

// One block per output channel: the mean of |W| over its row (a float tree sum: rows are at most a
// few thousand weights), then the signed scale and the mask.
__global__ void binarize_rows_kernel(const float* __restrict__ w, float* __restrict__ out, uint8_t* __restrict__ keep,
                                     float* __restrict__ alpha, int64_t n) {
  __shared__ float partial[kThreads];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) sum += fabsf(w[base + i]);
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float a = partial[0] / static_cast<float>(n);
  if (threadIdx.x == 0) alpha[blockIdx.x] = a;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = w[base + i];
    out[base + i] = v != v ? v : (v >= 0.f ? a : -a);
    keep[base + i] = static_cast<uint8_t>((v <= 1.f) & (v >= -1.f));
  }
}

__global__ void grad_rows_kernel(const float* __restrict__ g, const uint8_t* __restrict__ keep, const float* __restrict__ alpha,
                                 float* __restrict__ out, int64_t n) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  const float a = alpha[blockIdx.x];
  for (int64_t i = threadIdx.x; i < n; i += kThreads) out[base + i] = keep[base + i] ? g[base + i] * a : 0.f;
}

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
