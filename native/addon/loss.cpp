// Binding for native/train/loss.
#include "addon/loss.h"

#include "addon/convert.h"
#include "addon/errors.h"
#include "addon/tensor.h"
#include "train/loss.h"

namespace bnn::addon {

namespace {

Napi::Value cross_entropy(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const double smoothing = info.Length() > 2 && !info[2].IsUndefined() ? number_arg(info, 2, "labelSmoothing") : 0.0;
    return TensorHandle::wrap(info.Env(), train::cross_entropy(TensorHandle::unwrap(info, 0, "logits"),
                                                               TensorHandle::unwrap(info, 1, "labels"), smoothing));
  });
}

// distillationLoss(student, teacher, labels, temperature, weight, labelSmoothing)
Napi::Value distillation_loss(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const double smoothing = info.Length() > 5 && !info[5].IsUndefined() ? number_arg(info, 5, "labelSmoothing") : 0.0;
    return TensorHandle::wrap(info.Env(), train::distillation_loss(TensorHandle::unwrap(info, 0, "student"), TensorHandle::unwrap(info, 1, "teacher"),
                                                                   TensorHandle::unwrap(info, 2, "labels"), number_arg(info, 3, "temperature"),
                                                                   number_arg(info, 4, "weight"), smoothing));
  });
}

}  // namespace

void init_loss(Napi::Env env, Napi::Object exports) {
  exports.Set("crossEntropy", Napi::Function::New<cross_entropy>(env, "crossEntropy"));
  exports.Set("distillationLoss", Napi::Function::New<distillation_loss>(env, "distillationLoss"));
}

}  // namespace bnn::addon
