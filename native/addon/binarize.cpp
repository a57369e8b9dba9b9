// Binding for native/binarize: converts arguments and dispatches, nothing more.
#include "addon/binarize.h"

#include "addon/async_task.h"
#include "addon/errors.h"
#include "addon/tensor.h"
#include "binarize/approx_sign.h"
#include "binarize/binary_activation.h"

namespace bnn::addon {

namespace {

Napi::Value binary_activation(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return TensorHandle::wrap(info.Env(), bnn::binary_activation(TensorHandle::unwrap(info, 0, "x")));
  });
}

Napi::Value binary_activation_reference(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return TensorHandle::wrap(info.Env(), bnn::binary_activation_reference(TensorHandle::unwrap(info, 0, "x")));
  });
}

Napi::Value binary_activation_async(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = TensorHandle::unwrap(info, 0, "x");
    return AsyncTask::run(info.Env(), "bnn.binaryActivation", [x]() -> AsyncTask::Convert {
      at::Tensor y = bnn::binary_activation(x);
      return [y](Napi::Env env) -> Napi::Value { return TensorHandle::wrap(env, y); };
    });
  });
}

Napi::Value approx_sign(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return TensorHandle::wrap(info.Env(), bnn::approx_sign(TensorHandle::unwrap(info, 0, "x")));
  });
}

}  // namespace

void init_binarize(Napi::Env env, Napi::Object exports) {
  exports.Set("binaryActivation", Napi::Function::New<binary_activation>(env, "binaryActivation"));
  exports.Set("binaryActivationReference", Napi::Function::New<binary_activation_reference>(env, "binaryActivationReference"));
  exports.Set("binaryActivationAsync", Napi::Function::New<binary_activation_async>(env, "binaryActivationAsync"));
  exports.Set("approxSign", Napi::Function::New<approx_sign>(env, "approxSign"));
}

}  // namespace bnn::addon
