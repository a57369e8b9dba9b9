#include "addon/convert.h"

#include <cmath>

#include "addon/errors.h"

namespace bnn::addon {

int64_t to_integer(Napi::Env env, const Napi::Value& v, const std::string& name, double lo, double hi) {
  if (!v.IsNumber()) throw_type_error(env, name + " must be an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) throw_type_error(env, name + " must be an integer");
  if (d < lo || d > hi) throw_range_error(env, name + " must be between " + std::to_string(static_cast<int64_t>(lo)) + " and " +
                                                   std::to_string(static_cast<int64_t>(hi)) + ", got " + std::to_string(static_cast<int64_t>(d)));
  return static_cast<int64_t>(d);
}

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (index >= info.Length() || !info[index].IsString()) throw_type_error(info.Env(), std::string(name) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

double number_arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (index >= info.Length() || !info[index].IsNumber()) throw_type_error(info.Env(), std::string(name) + " must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

std::vector<int64_t> shape_arg(const Napi::CallbackInfo& info, size_t index, bool allow_infer) {
  Napi::Env env = info.Env();
  if (index >= info.Length() || !info[index].IsArray()) throw_type_error(env, "shape must be an array of integers");
  auto array = info[index].As<Napi::Array>();
  if (array.Length() > 16) throw_range_error(env, "shape has " + std::to_string(array.Length()) + " dimensions; at most 16 are supported");
  std::vector<int64_t> shape;
  shape.reserve(array.Length());
  bool inferred = false;
  double product = 1;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value v = array.Get(i);
    if (!v.IsNumber()) throw_type_error(env, "shape[" + std::to_string(i) + "] must be an integer");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d) throw_type_error(env, "shape[" + std::to_string(i) + "] must be an integer");
    if (d == -1 && allow_infer && !inferred) {
      inferred = true;
      shape.push_back(-1);
      continue;
    }
    if (d < 0) throw_range_error(env, "shape[" + std::to_string(i) + "] must not be negative, got " + std::to_string(static_cast<int64_t>(d)));
    product *= d;
    if (product > 1e12) throw_range_error(env, "shape describes more than 1e12 elements");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

at::ScalarType parse_dtype(const Napi::CallbackInfo& info, size_t index) {
  const std::string name = string_arg(info, index, "dtype");
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  throw_type_error(info.Env(), "unknown dtype '" + name + "': expected float32, float64, float16, bfloat16, int64, int32, uint8 or bool");
}

const char* dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

Napi::Array shape_to_js(Napi::Env env, c10::IntArrayRef shape) {
  auto array = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) array.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
  return array;
}

}  // namespace bnn::addon
