#pragma once
#include <napi.h>

namespace bnn::addon {
void init_binarize(Napi::Env env, Napi::Object exports);
}
