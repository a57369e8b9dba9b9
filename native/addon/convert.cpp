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

double optional_number(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw_type_error(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t optional_integer(const Napi::Object& o, const char* key, int64_t fallback, double lo, double hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  return to_integer(o.Env(), v, key, lo, hi);
}

bool optional_bool(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw_type_error(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>();
}

int64_t integer_field(const Napi::Object& o, const char* key, double lo, double hi) { return to_integer(o.Env(), o.Get(key), key, lo, hi); }

bool bool_field(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw_type_error(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>();
}

std::string string_field(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw_type_error(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<std::string> to_strings(Napi::Env env, const Napi::Value& v, const std::string& what, size_t max) {
  if (!v.IsArray()) throw_type_error(env, what + " must be an array of strings");
  auto a = v.As<Napi::Array>();
  if (a.Length() > max) throw_range_error(env, what + " has " + std::to_string(a.Length()) + " entries; at most " + std::to_string(max) + " are supported");
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw_type_error(env, what + "[" + std::to_string(i) + "] must be a string");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

std::vector<double> optional_numbers(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  std::vector<double> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw_type_error(o.Env(), std::string(key) + " must be an array of numbers");
  auto a = v.As<Napi::Array>();
  if (a.Length() > 65536) throw_range_error(o.Env(), std::string(key) + " has " + std::to_string(a.Length()) + " values; at most 65536 are supported");
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw_type_error(o.Env(), std::string(key) + "[" + std::to_string(i) + "] must be a number");
    out.push_back(e.As<Napi::Number>().DoubleValue());
  }
  return out;
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

Napi::Array shape_to_js(Napi::Env env, c10::IntArrayRef shape) {
  auto array = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) array.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
  return array;
}

}  // namespace bnn::addon
