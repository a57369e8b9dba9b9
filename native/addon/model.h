#pragma once
#include <napi.h>

namespace bnn::addon {
void init_model(Napi::Env env, Napi::Object exports);
}
