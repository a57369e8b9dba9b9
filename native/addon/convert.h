#pragma once
// JS <-> C++ value conversion: the binding's one validation vocabulary. Every reader names the
// argument or field in its error and follows the TypeScript side's rule (src/core/check.ts): a
// value of the wrong type (not a number, a fraction where an integer is needed, not a boolean, not
// a string, not the right kind of handle) is a TypeError; a right-typed value outside its range is
// a RangeError.
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <napi.h>

#include "core/dtype.h"

namespace bnn::addon {

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* name);
double number_arg(const Napi::CallbackInfo& info, size_t index, const char* name);
// An integral JS number in [lo, hi]: TypeError for a non-integer, RangeError outside the range.
int64_t to_integer(Napi::Env env, const Napi::Value& v, const std::string& name, double lo, double hi);
// Fields of an options object. The optional_* readers return `fallback` when the field is
// undefined; the others require it.
double optional_number(const Napi::Object& o, const char* key, double fallback);
int64_t optional_integer(const Napi::Object& o, const char* key, int64_t fallback, double lo, double hi);
bool optional_bool(const Napi::Object& o, const char* key, bool fallback);
int64_t integer_field(const Napi::Object& o, const char* key, double lo, double hi);
bool bool_field(const Napi::Object& o, const char* key);
std::string string_field(const Napi::Object& o, const char* key);
// An array of strings (at most `max` of them); TypeError naming `what` otherwise.
std::vector<std::string> to_strings(Napi::Env env, const Napi::Value& v, const std::string& what, size_t max = 1u << 31);
// An array of finite numbers; empty when the field is undefined or null.
std::vector<double> optional_numbers(const Napi::Object& o, const char* key);

// The largest integer a JS number holds exactly (2^53 - 1).
constexpr double kMaxSafeInteger = 9007199254740991.0;

// The C++ object behind a JS handle made by `constructor` (an ObjectWrap subclass), or a
// TypeError "<what> must be a <kind>" for anything else.
template <typename Wrapped>
Wrapped* unwrap_instance(Napi::Env env, const Napi::Value& value, const Napi::FunctionReference& constructor, const std::string& what,
                         const char* kind) {
  if (!value.IsObject() || constructor.IsEmpty() || !value.As<Napi::Object>().InstanceOf(constructor.Value())) {
    throw Napi::TypeError::New(env, what + " must be " + kind);
  }
  return Wrapped::Unwrap(value.As<Napi::Object>());
}

// Argument `index` of a call, or undefined past the end.
inline Napi::Value arg(const Napi::CallbackInfo& info, size_t index) { return index < info.Length() ? info[index] : info.Env().Undefined(); }
// An integral argument in [lo, hi].
inline int64_t integer_arg(const Napi::CallbackInfo& info, size_t index, const char* name, double lo = 0, double hi = kMaxSafeInteger) {
  return to_integer(info.Env(), arg(info, index), name, lo, hi);
}

std::vector<int64_t> shape_arg(const Napi::CallbackInfo& info, size_t index, bool allow_infer = false);
at::ScalarType parse_dtype(const Napi::CallbackInfo& info, size_t index);
// dtype_name (core/dtype.h) names element types in messages and results.
using bnn::dtype_name;
Napi::Array shape_to_js(Napi::Env env, c10::IntArrayRef shape);

}  // namespace bnn::addon
