#include "data/idx.h"

#include <filesystem>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "data/file_reader.h"

namespace bnn::data {

namespace {

// Largest single file this reader will allocate for: far above any IDX dataset, far below what a
// lying header could otherwise make it try.
constexpr uint64_t kMaxPayload = uint64_t{1} << 34;  // 16 GiB
constexpr uint32_t kMaxSide = 1u << 16;

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

const char* type_name(uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return nullptr;
  }
}

std::string hex_bytes(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

std::string pick_file(const std::string& root, const std::string& stem) {
  namespace fs = std::filesystem;
  const fs::path raw = fs::path(root) / stem;
  const fs::path gz = fs::path(root) / (stem + ".gz");
  std::error_code ec;
  if (fs::exists(raw, ec)) return raw.string();
  if (fs::exists(gz, ec)) return gz.string();
  fail(ErrorKind::Io, root + ": neither " + stem + " nor " + stem + ".gz is there");
}

}  // namespace

IdxArray read_idx(const std::string& path, int64_t ndims, const std::string& what) {
  FileReader in(path);
  uint8_t magic[4];
  const size_t got_magic = in.read(magic, 4);
  if (got_magic < 4) {
    fail(ErrorKind::Io, path + ": too short for an IDX file (" + std::to_string(got_magic) + " bytes, the header alone needs " +
                            std::to_string(4 + 4 * ndims) + ")");
  }
  if (magic[0] != 0 || magic[1] != 0) {
    fail(ErrorKind::Io, path + ": not an IDX file: magic number " + hex_bytes(magic, 4) +
                            " does not start with two zero bytes");
  }
  if (magic[2] != 0x08) {
    const char* name = type_name(magic[2]);
    fail(ErrorKind::Io, path + ": IDX element type " + hex_bytes(magic + 2, 1) + (name ? std::string(" (") + name + ")" : " (unknown)") +
                            " is not supported: MNIST-style " + what + " are unsigned bytes (0x08)");
  }
  if (magic[3] != ndims) {
    fail(ErrorKind::Io, path + ": IDX header has " + std::to_string(magic[3]) + " dimensions, expected " +
                            std::to_string(ndims) + (ndims == 3 ? " (images: count x rows x cols)" : " (labels: count)"));
  }

  uint8_t header[4 * 3];
  const size_t header_bytes = static_cast<size_t>(4 * ndims);
  const size_t got_header = in.read(header, header_bytes);
  if (got_header < header_bytes) {
    fail(ErrorKind::Io, path + ": truncated IDX header: " + std::to_string(ndims) + " dimension sizes need " +
                            std::to_string(header_bytes) + " bytes but only " + std::to_string(got_header) + " follow");
  }
  std::vector<int64_t> dims;
  uint64_t total = 1;
  for (int64_t i = 0; i < ndims; ++i) {
    const uint32_t d = big_endian_u32(header + 4 * i);
    const char* role = i == 0 ? "count" : i == 1 ? "rows" : "cols";
    if (d == 0) fail(ErrorKind::Io, path + ": IDX header gives " + role + " = 0");
    if (d > 0x7fffffffu) fail(ErrorKind::Io, path + ": IDX header gives " + role + " = " + std::to_string(d) + ", above 2^31 - 1");
    if (i > 0 && d > kMaxSide) {
      fail(ErrorKind::Io, path + ": IDX header gives " + role + " = " + std::to_string(d) + ", above the " +
                              std::to_string(kMaxSide) + " this reader accepts");
    }
    dims.push_back(d);
    total *= d;  // at most 2^31 * 2^16 * 2^16: no overflow in 64 bits
  }
  const std::string claim = "header says " + dims_text(dims) + " = " + std::to_string(total) + " bytes of " + what;
  if (total > kMaxPayload) {
    fail(ErrorKind::Io, path + ": " + claim + ", more than the " + std::to_string(kMaxPayload) + " this reader accepts");
  }
  if (auto remaining = in.known_remaining()) {
    if (*remaining < total) fail(ErrorKind::Io, path + ": truncated: " + claim + " but only " + std::to_string(*remaining) + " follow");
    if (*remaining > total) {
      fail(ErrorKind::Io, path + ": " + claim + " but " + std::to_string(*remaining) + " follow (" +
                              std::to_string(*remaining - total) + " unexpected bytes)");
    }
  } else if (total > in.max_remaining()) {
    fail(ErrorKind::Io, path + ": " + claim + ", more than its " + std::to_string(in.file_size()) +
                            "-byte gzip stream can hold (at most " + std::to_string(in.max_remaining()) + ")");
  }

  at::Tensor data = at::empty(dims, at::TensorOptions().dtype(at::kByte));
  const size_t got = in.read(data.data_ptr<uint8_t>(), static_cast<size_t>(total));
  if (got < total) fail(ErrorKind::Io, path + ": truncated: " + claim + " but only " + std::to_string(got) + " follow");
  in.expect_end(std::to_string(total) + " bytes of " + what + " the header announces");
  return {std::move(dims), std::move(data)};
}

std::shared_ptr<Dataset> load_idx_dataset(const DatasetSpec& spec, const std::string& root, Split split) {
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const std::string images_path = pick_file(root, prefix + "-images-idx3-ubyte");
  const std::string labels_path = pick_file(root, prefix + "-labels-idx1-ubyte");

  IdxArray images = read_idx(images_path, 3, "pixels");
  IdxArray labels = read_idx(labels_path, 1, "labels");
  if (images.dims[0] != labels.dims[0]) {
    fail(ErrorKind::Io, images_path + " holds " + std::to_string(images.dims[0]) + " images but " + labels_path + " holds " +
                            std::to_string(labels.dims[0]) + " labels");
  }
  auto dataset = std::make_shared<Dataset>();
  dataset->name = spec.name;
  dataset->class_names = spec.class_names;
  dataset->mean = spec.mean;
  dataset->std = spec.std;
  dataset->images = images.data.view({images.dims[0], 1, images.dims[1], images.dims[2]});
  dataset->labels = checked_labels(labels.data.data_ptr<uint8_t>(), labels.dims[0], dataset->num_classes(), labels_path);
  return dataset;
}

}  // namespace bnn::data
