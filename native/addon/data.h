#pragma once
#include <napi.h>

namespace bnn::addon {
void init_data(Napi::Env env, Napi::Object exports);
}
