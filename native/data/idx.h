#pragma once
// IDX files (MNIST, Fashion-MNIST), raw or gzipped: big-endian header of dimension sizes, then
// unsigned bytes. Nothing in the header is trusted: magic, element type, dimension count, each
// size, and the byte count it implies are all checked against the file before anything is read.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "data/dataset.h"

namespace bnn::data {

struct IdxArray {
  std::vector<int64_t> dims;
  at::Tensor data;  // uint8, contiguous, shaped as dims
};

// Reads an IDX file of unsigned bytes that must have `ndims` dimensions. `what` names the content
// for messages ("pixels", "labels").
IdxArray read_idx(const std::string& path, int64_t ndims, const std::string& what);

// Reads `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]` from `root`
// (train or t10k) into a dataset described by `spec`.
std::shared_ptr<Dataset> load_idx_dataset(const DatasetSpec& spec, const std::string& root, Split split);

}  // namespace bnn::data
