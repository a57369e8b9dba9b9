#pragma once
#include <napi.h>

namespace bnn::addon {
void init_train(Napi::Env env, Napi::Object exports);
}
