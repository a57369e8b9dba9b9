#include "infer/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/errors.h"
#include "infer/json.h"

namespace bnn::infer {

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;        // the reference implementation's own limit
constexpr uint64_t kMaxFile = uint64_t{4} << 30;   // 4 GiB
constexpr int kMaxRank = 8;

struct DTypeInfo {
  DType d;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U64, "U64", 8}, {DType::U32, "U32", 4}, {DType::U16, "U16", 2}, {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1},
};

[[noreturn]] void io_error(const std::string& name, const std::string& msg) { fail(ErrorKind::Io, name + ": " + msg); }

float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(man | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

}  // namespace

const char* dtype_name(DType d) {
  for (const auto& t : kDTypes) {
    if (t.d == d) return t.name;
  }
  return "?";
}

size_t dtype_size(DType d) {
  for (const auto& t : kDTypes) {
    if (t.d == d) return t.size;
  }
  return 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafeTensors SafeTensors::read_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) io_error(path, std::string("cannot open: ") + std::strerror(errno));
  // A directory opens on Linux and ftell() then reports a huge size: say what it is instead.
  struct stat st_info {};
  if (fstat(fileno(f), &st_info) != 0 || !S_ISREG(st_info.st_mode)) {
    std::fclose(f);
    io_error(path, "not a regular file");
  }
  std::vector<uint8_t> bytes;
  bool ok = std::fseek(f, 0, SEEK_END) == 0;
  const long size = ok ? std::ftell(f) : -1;
  ok = ok && size >= 0 && std::fseek(f, 0, SEEK_SET) == 0;
  if (ok && static_cast<uint64_t>(size) > kMaxFile) {
    std::fclose(f);
    io_error(path, "file of " + std::to_string(size) + " bytes is larger than the 4 GiB limit");
  }
  if (ok) {
    bytes.resize(static_cast<size_t>(size));
    ok = bytes.empty() || std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
  }
  std::fclose(f);
  if (!ok) io_error(path, "cannot read the file");
  return parse(std::move(bytes), path);
}

SafeTensors SafeTensors::parse(std::vector<uint8_t> bytes, const std::string& name) {
  SafeTensors st;
  st.name_ = name;
  st.bytes_ = std::move(bytes);
  const auto& b = st.bytes_;
  if (b.size() < 8) io_error(name, "truncated: " + std::to_string(b.size()) + " bytes, not even the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<size_t>(i)];
  if (n < 2 || n > kMaxHeader) io_error(name, "header length " + std::to_string(n) + " is out of bounds (2 .. 100 MiB)");
  if (n > b.size() - 8) {
    io_error(name, "truncated: the header claims " + std::to_string(n) + " bytes but the file has " + std::to_string(b.size() - 8) + " after the length");
  }
  const std::string header(reinterpret_cast<const char*>(b.data() + 8), static_cast<size_t>(n));
  const json::Value root = json::parse(header, name + " (safetensors header)");
  if (root.type != json::Value::Type::Object) io_error(name, "the header is not a JSON object");
  const size_t data_start = 8 + static_cast<size_t>(n);
  const uint64_t data_size = b.size() - data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [key, v] : root.object) {
    if (key == "__metadata__") {
      if (v.type != json::Value::Type::Object) io_error(name, "__metadata__ is not an object");
      for (const auto& [mk, mv] : v.object) {
        if (mv.type != json::Value::Type::String) io_error(name, "__metadata__ entry '" + mk + "' is not a string");
        st.metadata_[mk] = mv.string;
      }
      continue;
    }
    const std::string where = "tensor '" + key + "'";
    if (v.type != json::Value::Type::Object) io_error(name, where + ": entry is not an object");
    const json::Value* dt = v.find("dtype");
    const json::Value* shape = v.find("shape");
    const json::Value* offs = v.find("data_offsets");
    if (!dt || dt->type != json::Value::Type::String) io_error(name, where + ": missing or non-string dtype");
    if (!shape || shape->type != json::Value::Type::Array) io_error(name, where + ": missing or non-array shape");
    if (!offs || offs->type != json::Value::Type::Array || offs->array.size() != 2) io_error(name, where + ": data_offsets must be [begin, end]");
    if (v.object.size() != 3) io_error(name, where + ": unexpected keys beside dtype, shape and data_offsets");
    TensorView t;
    t.name = key;
    bool known = false;
    for (const auto& info : kDTypes) {
      if (dt->string == info.name) {
        t.dtype = info.d;
        known = true;
      }
    }
    if (!known) io_error(name, where + ": unknown dtype '" + dt->string + "'");
    if (shape->array.size() > kMaxRank) io_error(name, where + ": rank " + std::to_string(shape->array.size()) + " is above " + std::to_string(kMaxRank));
    uint64_t numel = 1;
    for (const auto& d : shape->array) {
      if (d.type != json::Value::Type::Number || !d.integral || d.integer < 0) io_error(name, where + ": shape entries must be non-negative integers");
      const uint64_t dim = static_cast<uint64_t>(d.integer);
      if (dim != 0 && numel > (kMaxFile / dim)) io_error(name, where + ": shape " + "is too large");
      numel *= dim;
      t.shape.push_back(d.integer);
    }
    uint64_t o[2];
    for (int k = 0; k < 2; ++k) {
      const auto& x = offs->array[static_cast<size_t>(k)];
      if (x.type != json::Value::Type::Number || !x.integral || x.integer < 0) io_error(name, where + ": data_offsets must be non-negative integers");
      o[k] = static_cast<uint64_t>(x.integer);
    }
    if (o[1] < o[0]) io_error(name, where + ": data_offsets end " + std::to_string(o[1]) + " is before begin " + std::to_string(o[0]));
    if (o[1] > data_size) {
      io_error(name, where + ": data_offsets [" + std::to_string(o[0]) + ", " + std::to_string(o[1]) + ") run past the data (" +
                         std::to_string(data_size) + " bytes): truncated file?");
    }
    const uint64_t expect = numel * dtype_size(t.dtype);
    if (o[1] - o[0] != expect) {
      io_error(name, where + ": " + std::to_string(o[1] - o[0]) + " data bytes but dtype " + dt->string + " and shape " +
                         shape_string(t.shape) + " need " + std::to_string(expect));
    }
    t.numel = static_cast<int64_t>(numel);
    t.data = b.data() + data_start + o[0];
    t.bytes = static_cast<size_t>(expect);
    if (expect > 0) ranges.emplace_back(o[0], o[1]);
    st.tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      io_error(name, "two tensors' data ranges overlap at byte " + std::to_string(ranges[i].first) + " of the data");
    }
  }
  return st;
}

const TensorView* SafeTensors::find(const std::string& tensor) const {
  for (const auto& t : tensors_) {
    if (t.name == tensor) return &t;
  }
  return nullptr;
}

const TensorView& SafeTensors::get(const std::string& tensor, DType dtype, const std::vector<int64_t>& shape) const {
  const TensorView* t = find(tensor);
  if (!t) io_error(name_, "tensor '" + tensor + "' is missing");
  if (t->dtype != dtype) {
    io_error(name_, "tensor '" + tensor + "' has dtype " + dtype_name(t->dtype) + ", expected " + dtype_name(dtype));
  }
  if (t->shape != shape) {
    io_error(name_, "tensor '" + tensor + "' has shape " + shape_string(t->shape) + ", expected " + shape_string(shape));
  }
  return *t;
}

std::vector<float> SafeTensors::floats(const std::string& tensor, const std::vector<int64_t>& shape) const {
  const TensorView* t = find(tensor);
  if (!t) io_error(name_, "tensor '" + tensor + "' is missing");
  if (t->shape != shape) {
    io_error(name_, "tensor '" + tensor + "' has shape " + shape_string(t->shape) + ", expected " + shape_string(shape));
  }
  std::vector<float> out(static_cast<size_t>(t->numel));
  switch (t->dtype) {
    case DType::F32:
      if (t->bytes) std::memcpy(out.data(), t->data, t->bytes);
      break;
    case DType::F64:
      for (size_t i = 0; i < out.size(); ++i) {
        double d;
        std::memcpy(&d, t->data + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        if (t->dtype == DType::F16) {
          out[i] = half_to_float(h);
        } else {
          const uint32_t bits = static_cast<uint32_t>(h) << 16;
          std::memcpy(&out[i], &bits, 4);
        }
      }
      break;
    default:
      io_error(name_, "tensor '" + tensor + "' has dtype " + dtype_name(t->dtype) + ", expected a float dtype");
  }
  return out;
}

TensorData make_f32(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  TensorData t{name, DType::F32, shape, {}};
  t.bytes.resize(values.size() * 4);
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

TensorData make_u8(const std::string& name, const std::vector<int64_t>& shape, std::vector<uint8_t> values) {
  return TensorData{name, DType::U8, shape, std::move(values)};
}

std::vector<uint8_t> serialize_safetensors(const std::vector<TensorData>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      h += (first ? "" : ",") + json::quote(k) + ":" + json::quote(v);
      first = false;
    }
    h += "}";
    first = false;
  }
  uint64_t offset = 0;
  std::vector<uint64_t> begins;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    if (t.bytes.size() != static_cast<uint64_t>(numel) * dtype_size(t.dtype)) {
      fail(ErrorKind::InvalidArgument, "serialize_safetensors: tensor '" + t.name + "' has the wrong byte count");
    }
    offset = (offset + 7) & ~uint64_t{7};
    begins.push_back(offset);
    h += std::string(first ? "" : ",") + json::quote(t.name) + ":{\"dtype\":\"" + dtype_name(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
    first = false;
  }
  h += "}";
  while ((8 + h.size()) % 8) h += ' ';  // data starts 8-byte aligned, as the reference writer does
  std::vector<uint8_t> out(8 + h.size() + offset, 0);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].bytes.empty()) std::memcpy(out.data() + 8 + h.size() + begins[i], tensors[i].bytes.data(), tensors[i].bytes.size());
  }
  return out;
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  // pid and a counter: two writers in one process (two async exports) never share a temporary.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) io_error(path, std::string("cannot create ") + tmp + ": " + std::strerror(errno));
  bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(::fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    io_error(path, "cannot write the file (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    io_error(path, std::string("cannot rename the temporary file into place: ") + std::strerror(e));
  }
}

size_t write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  const std::vector<uint8_t> bytes = serialize_safetensors(tensors, metadata);
  write_file_atomic(path, bytes);
  return bytes.size();
}

}  // namespace bnn::infer
