#include "binarize/binary_activation.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "core/errors.h"
#include "core/vectorize.h"

namespace bnn {

namespace detail {

void check_activation_input(const at::Tensor& x) {
  if (!x.defined()) fail(ErrorKind::InvalidArgument, "binary_activation: the input tensor is undefined");
  if (!at::isFloatingType(x.scalar_type())) {
    fail(ErrorKind::InvalidType, std::string("binary_activation expects a floating-point tensor, got ") +
                                     c10::toString(x.scalar_type()));
  }
}

void check_activation_grad(const at::Tensor& grad_output, const at::Tensor& mask) {
  if (!grad_output.defined() || !mask.defined()) {
    fail(ErrorKind::InvalidArgument, "binary_activation backward: gradient or mask is undefined");
  }
  if (mask.scalar_type() != at::kByte) fail(ErrorKind::InvalidType, "binary_activation backward: mask must be uint8");
  if (grad_output.sizes() != mask.sizes()) {
    fail(ErrorKind::InvalidArgument, "binary_activation backward: gradient shape " +
                                         c10::str(grad_output.sizes()) + " differs from the input shape " +
                                         c10::str(mask.sizes()));
  }
  if (grad_output.device() != mask.device()) {
    fail(ErrorKind::InvalidArgument, "binary_activation backward: gradient and mask are on different devices");
  }
  if (!at::isFloatingType(grad_output.scalar_type())) {
    fail(ErrorKind::InvalidType, "binary_activation backward: the gradient must be floating point");
  }
}

}  // namespace detail

namespace {

// A dense tensor can be walked as one flat array in storage order; anything else is copied once.
at::Tensor dense(const at::Tensor& t) { return t.is_non_overlapping_and_dense() ? t : t.contiguous(); }

// Same memory layout as `like`, so flat index i refers to the same element in both.
at::Tensor dense_like(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides() && t.is_non_overlapping_and_dense()) return t;
  return at::empty_like(like, t.options()).copy_(t);
}

constexpr int64_t kGrain = 1 << 14;

// The float32 loops are branch-free (a data-dependent branch on the sign mispredicts about a third
// of the time on real activations) and compiled for AVX2 / AVX-512 besides the baseline, picked at
// run time, so the build needs no -march flag.

BNN_KERNEL(void, forward_f32, (const float* __restrict__ src, float* __restrict__ dst, uint8_t* __restrict__ keep,
                                   int64_t n), (src, dst, keep, n), {
  for (int64_t i = 0; i < n; ++i) {
    const float v = src[i];
    const float s = v >= 0.f ? 1.f : -1.f;
    dst[i] = v != v ? v : s;  // NaN stays NaN
    keep[i] = static_cast<uint8_t>((v > -1.f) & (v < 1.f));
  }
})

BNN_KERNEL(void, backward_f32, (const float* __restrict__ src, const uint8_t* __restrict__ keep,
                                    float* __restrict__ dst, int64_t n), (src, keep, dst, n), {
  const uint32_t* __restrict__ in = reinterpret_cast<const uint32_t*>(src);
  uint32_t* __restrict__ out = reinterpret_cast<uint32_t*>(dst);
  // Masking the bits (not multiplying by 0/1) keeps an inf or NaN gradient at exactly 0 where cut.
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] & (0u - static_cast<uint32_t>(keep[i]));
})

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& input) {
  detail::check_activation_input(input);
  const at::Tensor x = dense(input);
  at::Tensor out = at::empty_like(x);
  at::Tensor mask = at::empty_like(x, x.options().dtype(at::kByte));
  const int64_t n = x.numel();
  if (x.scalar_type() == at::kFloat) {
    const float* src = x.const_data_ptr<float>();
    float* dst = out.mutable_data_ptr<float>();
    uint8_t* keep = mask.mutable_data_ptr<uint8_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { forward_f32(src + begin, dst + begin, keep + begin, end - begin); });
    return {out, mask};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "binary_activation_forward_cpu", [&] {
    const scalar_t* __restrict__ src = x.const_data_ptr<scalar_t>();
    scalar_t* __restrict__ dst = out.mutable_data_ptr<scalar_t>();
    uint8_t* __restrict__ keep = mask.mutable_data_ptr<uint8_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float v = static_cast<float>(src[i]);
        dst[i] = static_cast<scalar_t>(v >= 0.f ? 1.f : (v < 0.f ? -1.f : v));
        keep[i] = static_cast<uint8_t>((v > -1.f) & (v < 1.f));
      }
    });
  });
  return {out, mask};
}

at::Tensor backward_cpu(const at::Tensor& grad_output, const at::Tensor& mask) {
  detail::check_activation_grad(grad_output, mask);
  const at::Tensor g = dense_like(grad_output, mask);
  at::Tensor grad_input = at::empty_like(g);
  const int64_t n = g.numel();
  if (g.scalar_type() == at::kFloat) {
    const float* src = g.const_data_ptr<float>();
    const uint8_t* keep = mask.const_data_ptr<uint8_t>();
    float* dst = grad_input.mutable_data_ptr<float>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) { backward_f32(src + begin, keep + begin, dst + begin, end - begin); });
    return grad_input;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "binary_activation_backward_cpu", [&] {
    const scalar_t* __restrict__ src = g.const_data_ptr<scalar_t>();
    const uint8_t* __restrict__ keep = mask.const_data_ptr<uint8_t>();
    scalar_t* __restrict__ dst = grad_input.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        dst[i] = keep[i] ? src[i] : static_cast<scalar_t>(0);
      }
    });
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY(bnn, m) {
  m.def("binary_activation_forward(Tensor x) -> (Tensor, Tensor)");
  m.def("binary_activation_backward(Tensor grad_output, Tensor mask) -> Tensor");
}

TORCH_LIBRARY_IMPL(bnn, CPU, m) {
  m.impl("binary_activation_forward", &forward_cpu);
  m.impl("binary_activation_backward", &backward_cpu);
}

std::tuple<at::Tensor, at::Tensor> binary_activation_forward(const at::Tensor& x) {
  detail::check_activation_input(x);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("bnn::binary_activation_forward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>();
  return op.call(x);
}

at::Tensor binary_activation_backward(const at::Tensor& grad_output, const at::Tensor& mask) {
  detail::check_activation_grad(grad_output, mask);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("bnn::binary_activation_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad_output, mask);
}

at::Tensor BinaryActivation::forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
  auto [out, mask] = binary_activation_forward(x);
  ctx->save_for_backward({mask});
  return out;
}

torch::autograd::tensor_list BinaryActivation::backward(torch::autograd::AutogradContext* ctx,
                                                        torch::autograd::tensor_list grad_outputs) {
  const auto saved = ctx->get_saved_variables();
  return {binary_activation_backward(grad_outputs[0], saved[0])};
}

at::Tensor binary_activation(const at::Tensor& x) {
  detail::check_activation_input(x);
  return BinaryActivation::apply(x);
}

at::Tensor binary_activation_reference(const at::Tensor& x) {
  detail::check_activation_input(x);
  const at::Tensor clipped = at::hardtanh(x);  // d/dx = 1 on (-1, 1), 0 elsewhere (also at +-1)
  const at::Tensor sign = at::where(x >= 0, at::ones_like(x), at::where(x < 0, -at::ones_like(x), x));
  return clipped + (sign - clipped).detach();
}

}  // namespace bnn
