#pragma once
// An image-classification dataset held in memory: uint8 images [N, C, H, W] and int64 labels [N],
// plus what a model and a loader need to know about it (classes, per-channel mean and std).
//
// Datasets are immutable once built and shared by std::shared_ptr<const Dataset>, so a loader's
// background thread can read one while the JS side drops its handle.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

namespace bnn::data {

class ImageSource;

// What is known about a named dataset before any file is read.
struct DatasetSpec {
  std::string name;  // 'mnist', 'fashion-mnist', 'cifar10', 'cifar100'
  int64_t channels = 1;
  int64_t height = 0;  // the standard size; the files decide the real one
  int64_t width = 0;
  std::vector<std::string> class_names;
  std::vector<double> mean;  // per channel, of pixel / 255 over the training split
  std::vector<double> std;
  std::string default_root;  // where a Debian package installs it, or empty
};

// Every named dataset, in a stable order.
const std::vector<DatasetSpec>& dataset_catalog();
// The spec for `name`; fails with InvalidArgument naming the known ones.
const DatasetSpec& dataset_spec(const std::string& name);

enum class Split { Train, Test };
Split parse_split(const std::string& split);

struct Dataset {
  std::string name;
  std::vector<std::string> class_names;
  std::vector<double> mean;
  std::vector<double> std;
  at::Tensor images;  // uint8, contiguous, CPU, [N, C, H, W]; undefined when streamed
  at::Tensor labels;  // int64, contiguous, CPU, [N], each in [0, num_classes)
  // Set for a streamed dataset: its samples are decoded from disk per batch, with its transform
  // deciding their shape (channels x size x size).
  std::shared_ptr<const ImageSource> source;

  bool streamed() const { return source != nullptr; }
  int64_t size() const { return labels.size(0); }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t channels() const;
  int64_t height() const;
  int64_t width() const;

  // Checks every invariant above (shapes, dtypes, label range, mean/std); throws bnn::Error.
  void validate() const;

 private:
  void validate_images() const;
  void validate_common() const;
};

// Reads a named dataset's split from `root` (empty: the spec's default folder). `limit` > 0 keeps
// the first `limit` samples; every byte of the files is still checked.
std::shared_ptr<const Dataset> load_dataset(const std::string& name, const std::string& root, Split split,
                                            int64_t limit);

// The samples at `indices`, in that order (a copy).
std::shared_ptr<const Dataset> subset(const Dataset& dataset, const std::vector<int64_t>& indices);

// The first n samples (a copy).
std::shared_ptr<const Dataset> take(const Dataset& dataset, int64_t n);

// Carves `validation_size` samples chosen by `seed` out of `dataset`. Both parts keep the
// original order of their samples, so the result depends only on (size of dataset, size, seed).
struct ValidationSplit {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> validation;
};
ValidationSplit split_validation(const Dataset& dataset, int64_t validation_size, uint64_t seed);

// Turns a label byte array into int64 labels, failing with `file` and the first bad index when a
// label is not below `num_classes`.
at::Tensor checked_labels(const uint8_t* bytes, int64_t count, int64_t num_classes, const std::string& file);

}  // namespace bnn::data
