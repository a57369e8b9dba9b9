#pragma once
#include <napi.h>

namespace bnn::addon {
void init_loss(Napi::Env env, Napi::Object exports);
}
