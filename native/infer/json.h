#pragma once
// A small strict JSON reader and writer, enough for safetensors headers and the model config:
// objects, arrays, strings (with escapes, \u included), numbers, true / false / null. Depth and
// size are bounded; any malformed input throws bnn::Error(Io, "<what>: ...").
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bnn::infer::json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object } type = Type::Null;
  bool boolean = false;
  double number = 0;
  bool integral = false;   // the literal had no fraction or exponent
  int64_t integer = 0;     // exact value when integral and within int64 range
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // file order kept; duplicate keys rejected

  const Value* find(const std::string& key) const;
};

// `what` names the document in error messages.
Value parse(const std::string& text, const std::string& what);

std::string quote(const std::string& s);

}  // namespace bnn::infer::json
