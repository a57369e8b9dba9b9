#pragma once
// Every C++ exception stops here and becomes a JavaScript error with a clean message and a code:
// a bnn::Error keeps its kind, a c10::Error loses its C++ backtrace, anything else is wrapped.
#include <exception>
#include <string>
#include <utility>

#include <napi.h>

namespace bnn::addon {

enum class JsErrorType { Error, TypeError, RangeError };

struct ErrorInfo {
  JsErrorType type = JsErrorType::Error;
  std::string code;
  std::string message;
};

// Classifies an exception; safe to call on any thread (it touches no JS).
ErrorInfo describe_exception(std::exception_ptr error);

Napi::Error make_error(Napi::Env env, const ErrorInfo& info);

// Runs `body`, converting any C++ exception into a thrown JavaScript error.
template <typename F>
auto guard(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;  // already a JavaScript error
  } catch (...) {
    throw make_error(env, describe_exception(std::current_exception()));
  }
}

[[noreturn]] void throw_type_error(Napi::Env env, const std::string& message);
[[noreturn]] void throw_range_error(Napi::Env env, const std::string& message);

}  // namespace bnn::addon
