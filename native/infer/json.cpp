#include "infer/json.h"

#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>

#include "core/errors.h"

namespace bnn::infer::json {

const Value* Value::find(const std::string& key) const {
  for (const auto& kv : object) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

namespace {

constexpr int kMaxDepth = 64;
// Every value costs ~112 bytes once parsed: a cap on their number keeps a hostile 100 MiB header
// (a safetensors header may be that long) from asking for gigabytes. Real headers hold hundreds.
constexpr size_t kMaxValues = size_t{1} << 18;

struct Parser {
  const std::string& s;
  const std::string& what;
  size_t i = 0;
  size_t values = 0;

  [[noreturn]] void error(const std::string& msg) const {
    fail(ErrorKind::Io, what + ": malformed JSON at byte " + std::to_string(i) + ": " + msg);
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  char peek() {
    if (i >= s.size()) error("unexpected end");
    return s[i];
  }
  void expect_word(const char* w) {
    for (const char* p = w; *p; ++p) {
      if (i >= s.size() || s[i] != *p) error(std::string("expected '") + w + "'");
      ++i;
    }
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (s.size() - i < 4) error("short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else error("bad \\u escape");
    }
    return v;
  }
  std::string str() {
    if (peek() != '"') error("expected a string");
    ++i;
    std::string out;
    for (;;) {
      if (i >= s.size()) error("unterminated string");
      const char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) error("unterminated escape");
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (s.size() - i < 6 || s[i] != '\\' || s[i + 1] != 'u') error("lone surrogate");
            i += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) error("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            error("lone surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: error("bad escape");
      }
    }
  }
  Value number() {
    const size_t start = i;
    if (s[i] == '-') ++i;
    if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) error("bad number");
    if (s[i] == '0') ++i;
    else while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    bool integral = true;
    if (i < s.size() && s[i] == '.') {
      integral = false;
      ++i;
      if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) error("bad number");
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      integral = false;
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) error("bad number");
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    }
    Value v;
    v.type = Value::Type::Number;
    const std::string lit = s.substr(start, i - start);
    v.number = std::strtod(lit.c_str(), nullptr);
    if (integral && lit.size() <= 19) {  // fits int64 without overflow checks beyond this
      errno = 0;
      char* end = nullptr;
      const long long x = std::strtoll(lit.c_str(), &end, 10);
      if (errno == 0) {
        v.integral = true;
        v.integer = x;
      }
    }
    return v;
  }
  Value value(int depth) {
    if (depth > kMaxDepth) error("nested too deeply");
    if (++values > kMaxValues) error("more than " + std::to_string(kMaxValues) + " values");
    ws();
    Value v;
    const char c = peek();
    if (c == '{') {
      ++i;
      v.type = Value::Type::Object;
      ws();
      if (peek() == '}') { ++i; return v; }
      // A set, not v.find(): checking each key against all earlier ones is quadratic in a
      // crafted header with millions of keys.
      std::unordered_set<std::string> seen;
      for (;;) {
        ws();
        std::string key = str();
        if (!seen.insert(key).second) error("duplicate key '" + key + "'");
        ws();
        if (peek() != ':') error("expected ':'");
        ++i;
        Value child = value(depth + 1);
        v.object.emplace_back(std::move(key), std::move(child));
        ws();
        const char d = peek();
        ++i;
        if (d == '}') return v;
        if (d != ',') error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i;
      v.type = Value::Type::Array;
      ws();
      if (peek() == ']') { ++i; return v; }
      for (;;) {
        v.array.push_back(value(depth + 1));
        ws();
        const char d = peek();
        ++i;
        if (d == ']') return v;
        if (d != ',') error("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = Value::Type::String;
      v.string = str();
      return v;
    }
    if (c == 't') { expect_word("true"); v.type = Value::Type::Bool; v.boolean = true; return v; }
    if (c == 'f') { expect_word("false"); v.type = Value::Type::Bool; return v; }
    if (c == 'n') { expect_word("null"); return v; }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    error("unexpected character");
  }
};

}  // namespace

Value parse(const std::string& text, const std::string& what) {
  Parser p{text, what};
  Value v = p.value(0);
  p.ws();
  if (p.i != text.size()) p.error("trailing characters");
  return v;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace bnn::infer::json
