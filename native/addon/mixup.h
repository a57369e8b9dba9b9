#pragma once
#include <napi.h>

#include "train/mixup.h"

namespace bnn::addon {
void init_mixup(Napi::Env env, Napi::Object exports);
// A step's `mixup` option: { lambda, index } as given, or { alpha, seed } drawn here (draw_mixup)
// for a batch of n. Undefined or null: inactive.
train::Mixup parse_mixup(Napi::Env env, const Napi::Value& value, int64_t n);
}  // namespace bnn::addon
