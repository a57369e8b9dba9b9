#pragma once
// Errors the core raises for caller mistakes. They carry a stable code so the binding can map them
// to typed JavaScript errors (TypeError / RangeError with err.code) without parsing messages.
#include <stdexcept>
#include <string>

namespace bnn {

enum class ErrorKind {
  InvalidArgument,   // a value is out of range or inconsistent (RangeError in JS)
  InvalidType,       // a value has the wrong type or dtype (TypeError in JS)
  CudaUnavailable,   // CUDA was asked for and is not there
  Disposed,          // a released native object was used
  Io,                // a file could not be read or written, or is corrupt
  NonFiniteLoss,     // training diverged: the loss is NaN or infinite
  Distributed,       // a peer process failed, timed out or could not be reached
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// A LibTorch message without the "Exception raised from ..." trailer some builds append.
inline std::string without_backtrace(std::string message) {
  const auto pos = message.find("\nException raised from");
  if (pos != std::string::npos) message.erase(pos);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

[[noreturn]] inline void fail(ErrorKind kind, const std::string& message) { throw Error(kind, message); }

}  // namespace bnn
