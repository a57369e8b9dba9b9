#pragma once
#include <napi.h>

#include "image/transforms.h"

namespace bnn::addon {
void init_image(Napi::Env env, Napi::Object exports);
// A transform as the TypeScript side sends it (every field set), checked by image::validate.
image::TransformSpec parse_transform(const Napi::Object& o);
}  // namespace bnn::addon
