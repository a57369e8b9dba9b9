// Binding for native/train/mixup.
#include "addon/mixup.h"

#include <cmath>

#include "addon/convert.h"
#include "addon/errors.h"
#include "addon/tensor.h"
#include "core/errors.h"

namespace bnn::addon {

train::Mixup parse_mixup(Napi::Env env, const Napi::Value& value, int64_t n) {
  if (value.IsUndefined() || value.IsNull()) return {};
  if (!value.IsObject()) throw Napi::TypeError::New(env, "mixup must be an object: { alpha, seed } or { lambda, index }");
  const auto o = value.As<Napi::Object>();
  if (!o.Get("index").IsUndefined()) {
    train::Mixup m;
    m.lambda = optional_number(o, "lambda", NAN);
    m.index = TensorHandle::unwrap_value(env, o.Get("index"), "mixup.index");
    train::check_mixup(m, n);
    return m;
  }
  const double alpha = optional_number(o, "alpha", NAN);
  const int64_t seed = integer_field(o, "seed", 0, kMaxSafeInteger);
  return train::draw_mixup(alpha, n, static_cast<uint64_t>(seed));
}

namespace {

// drawMixup(alpha, n, seed) -> { lambda, index }
Napi::Value draw_mixup(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const double alpha = number_arg(info, 0, "alpha");
    const int64_t n = integer_arg(info, 1, "n", 1);
    const int64_t seed = integer_arg(info, 2, "seed");
    const train::Mixup m = train::draw_mixup(alpha, n, static_cast<uint64_t>(seed));
    auto out = Napi::Object::New(info.Env());
    out.Set("lambda", m.lambda);
    out.Set("index", TensorHandle::wrap(info.Env(), m.index));
    return out;
  });
}

train::Mixup mixup_args(const Napi::CallbackInfo& info, size_t at, int64_t n) {
  train::Mixup m;
  m.lambda = number_arg(info, at, "lambda");
  m.index = TensorHandle::unwrap(info, at + 1, "index");
  train::check_mixup(m, n);
  return m;
}

// mixImages(images, lambda, index) -> tensor
Napi::Value mix_images(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const at::Tensor& images = TensorHandle::unwrap(info, 0, "images");
    if (images.dim() < 1) fail(ErrorKind::InvalidArgument, "mixImages: images must have a batch dimension");
    return TensorHandle::wrap(info.Env(), train::mix_images(images, mixup_args(info, 1, images.size(0))));
  });
}

// mixupCrossEntropy(logits, labels, lambda, index, labelSmoothing) -> scalar tensor
Napi::Value mixup_cross_entropy(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const at::Tensor& logits = TensorHandle::unwrap(info, 0, "logits");
    const at::Tensor& labels = TensorHandle::unwrap(info, 1, "labels");
    train::Mixup m;
    m.lambda = number_arg(info, 2, "lambda");
    m.index = TensorHandle::unwrap(info, 3, "index");
    const double smoothing = info.Length() > 4 && !info[4].IsUndefined() ? number_arg(info, 4, "labelSmoothing") : 0.0;
    return TensorHandle::wrap(info.Env(), train::mixup_cross_entropy(logits, labels, m, smoothing));
  });
}

}  // namespace

void init_mixup(Napi::Env env, Napi::Object exports) {
  exports.Set("drawMixup", Napi::Function::New<draw_mixup>(env, "drawMixup"));
  exports.Set("mixImages", Napi::Function::New<mix_images>(env, "mixImages"));
  exports.Set("mixupCrossEntropy", Napi::Function::New<mixup_cross_entropy>(env, "mixupCrossEntropy"));
}

}  // namespace bnn::addon
