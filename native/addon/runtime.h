#pragma once
#include <napi.h>

namespace bnn::addon {
void init_runtime(Napi::Env env, Napi::Object exports);
}
