#pragma once
// Element types by the names users see (the TypeScript DType: float32, int64, ...), so a message
// from the core reads the same as one from the facade, whatever LibTorch calls the type.
#include <c10/core/ScalarType.h>

namespace bnn {

inline const char* dtype_name(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    case c10::kLong: return "int64";
    case c10::kInt: return "int32";
    case c10::kByte: return "uint8";
    case c10::kBool: return "bool";
    default: return c10::toString(type);
  }
}

}  // namespace bnn
