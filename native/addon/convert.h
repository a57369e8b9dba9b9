#pragma once
// JS <-> C++ value conversion with TypeErrors that name the argument.
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <napi.h>

namespace bnn::addon {

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* name);
double number_arg(const Napi::CallbackInfo& info, size_t index, const char* name);
// An integral JS number in [lo, hi]: TypeError for a non-integer, RangeError outside the range.
int64_t to_integer(Napi::Env env, const Napi::Value& v, const std::string& name, double lo, double hi);
std::vector<int64_t> shape_arg(const Napi::CallbackInfo& info, size_t index, bool allow_infer = false);
at::ScalarType parse_dtype(const Napi::CallbackInfo& info, size_t index);
const char* dtype_name(at::ScalarType type);
Napi::Array shape_to_js(Napi::Env env, c10::IntArrayRef shape);

}  // namespace bnn::addon
