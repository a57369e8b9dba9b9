#include "addon/errors.h"

#include <new>

#include <c10/util/Exception.h>

#include "core/errors.h"

namespace bnn::addon {

ErrorInfo describe_exception(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const bnn::Error& e) {
    switch (e.kind()) {
      case ErrorKind::InvalidArgument: return {JsErrorType::RangeError, "BNN_INVALID_ARGUMENT", e.what()};
      case ErrorKind::InvalidType: return {JsErrorType::TypeError, "BNN_INVALID_TYPE", e.what()};
      case ErrorKind::CudaUnavailable: return {JsErrorType::Error, "BNN_CUDA_UNAVAILABLE", e.what()};
      case ErrorKind::Disposed: return {JsErrorType::Error, "BNN_DISPOSED", e.what()};
      case ErrorKind::Io: return {JsErrorType::Error, "BNN_IO", e.what()};
      case ErrorKind::NonFiniteLoss: return {JsErrorType::Error, "BNN_NON_FINITE_LOSS", e.what()};
      case ErrorKind::Distributed: return {JsErrorType::Error, "BNN_DISTRIBUTED", e.what()};
    }
    return {JsErrorType::Error, "BNN_ERROR", e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {JsErrorType::Error, "BNN_OUT_OF_MEMORY", without_backtrace(e.what_without_backtrace())};
  } catch (const c10::TypeError& e) {
    return {JsErrorType::TypeError, "BNN_INVALID_TYPE", without_backtrace(e.what_without_backtrace())};
  } catch (const c10::ValueError& e) {
    return {JsErrorType::RangeError, "BNN_INVALID_ARGUMENT", without_backtrace(e.what_without_backtrace())};
  } catch (const c10::IndexError& e) {
    return {JsErrorType::RangeError, "BNN_INVALID_ARGUMENT", without_backtrace(e.what_without_backtrace())};
  } catch (const c10::DistError& e) {
    return {JsErrorType::Error, "BNN_DISTRIBUTED", without_backtrace(e.what_without_backtrace())};
  } catch (const c10::Error& e) {
    return {JsErrorType::Error, "BNN_TORCH_ERROR", without_backtrace(e.what_without_backtrace())};
  } catch (const std::bad_alloc&) {
    return {JsErrorType::Error, "BNN_OUT_OF_MEMORY", "out of memory"};
  } catch (const std::exception& e) {
    return {JsErrorType::Error, "BNN_INTERNAL_ERROR", e.what()};
  } catch (...) {
    return {JsErrorType::Error, "BNN_INTERNAL_ERROR", "unknown native error"};
  }
}

Napi::Error make_error(Napi::Env env, const ErrorInfo& info) {
  Napi::Error error = info.type == JsErrorType::TypeError    ? Napi::TypeError::New(env, info.message)
                      : info.type == JsErrorType::RangeError ? Napi::RangeError::New(env, info.message)
                                                             : Napi::Error::New(env, info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

void throw_type_error(Napi::Env env, const std::string& message) {
  auto error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "BNN_INVALID_TYPE"));
  throw error;
}

void throw_range_error(Napi::Env env, const std::string& message) {
  auto error = Napi::RangeError::New(env, message);
  error.Set("code", Napi::String::New(env, "BNN_INVALID_ARGUMENT"));
  throw error;
}

}  // namespace bnn::addon
