#pragma once
// A small, strict safetensors reader and an atomic writer (https://github.com/huggingface/safetensors):
//   8 bytes little-endian header length N | N bytes of JSON header | data.
// The reader checks everything before anything is used: header length bounds, the JSON, each
// entry's dtype, shape (non-negative, no overflow) and data_offsets (ordered, inside the data,
// matching the size the dtype and shape give), that no two tensors overlap, and that __metadata__
// maps strings to strings. A damaged or truncated file throws bnn::Error(Io, "<path>: ...").
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bnn::infer {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, Bool };

const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  const uint8_t* data = nullptr;  // not necessarily aligned: copy out with memcpy
  size_t bytes = 0;
};

std::string shape_string(const std::vector<int64_t>& shape);

class SafeTensors {
 public:
  // Reads and validates the whole file. Files above 4 GiB are refused.
  static SafeTensors read_file(const std::string& path);
  // Validates `bytes` (named `name` in errors).
  static SafeTensors parse(std::vector<uint8_t> bytes, const std::string& name);

  const std::string& name() const { return name_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  size_t file_bytes() const { return bytes_.size(); }

  const TensorView* find(const std::string& tensor) const;
  // The tensor, which must exist with this dtype and shape; errors name the tensor.
  const TensorView& get(const std::string& tensor, DType dtype, const std::vector<int64_t>& shape) const;
  // A float tensor of this shape as float32 (F32 as is; F64 / F16 / BF16 converted).
  std::vector<float> floats(const std::string& tensor, const std::vector<int64_t>& shape) const;

 private:
  std::string name_;
  std::vector<uint8_t> bytes_;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
};

struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

TensorData make_f32(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values);
TensorData make_u8(const std::string& name, const std::vector<int64_t>& shape, std::vector<uint8_t> values);

// Serialises (tensors in the given order, data 8-byte aligned).
std::vector<uint8_t> serialize_safetensors(const std::vector<TensorData>& tensors,
                                           const std::map<std::string, std::string>& metadata);
// Writes atomically: a temporary file next to `path`, flushed, then renamed over it. Returns the size.
size_t write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                         const std::map<std::string, std::string>& metadata);
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace bnn::infer
