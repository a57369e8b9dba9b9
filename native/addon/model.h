#pragma once
#include <memory>

#include <napi.h>

#include "nn/resnet.h"

namespace bnn::addon {
void init_model(Napi::Env env, Napi::Object exports);

// The module behind a JS model handle, with a TypeError for anything else and BNN_DISPOSED for a
// disposed one. Shared ownership keeps it alive through async work.
std::shared_ptr<nn::ResNet18> unwrap_model(const Napi::CallbackInfo& info, size_t index);
// The same for a value found elsewhere (an options field); `what` names it in the TypeError.
std::shared_ptr<nn::ResNet18> unwrap_model_value(Napi::Env env, const Napi::Value& value, const std::string& what);
}
