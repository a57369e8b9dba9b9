#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_source.h"
#include "data/random.h"

namespace bnn::data {

namespace {

constexpr int64_t kMaxSamples = 0x7fffffff;  // epoch orders travel to JS as Int32Array
constexpr int64_t kMaxSide = 1 << 16;

std::vector<DatasetSpec> build_catalog() {
  std::vector<DatasetSpec> specs;
  specs.push_back({"mnist", 1, 28, 28, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, {0.1307}, {0.3081}, ""});
  specs.push_back({"fashion-mnist", 1, 28, 28,
                   {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
                   {0.2860}, {0.3530}, "/usr/share/datasets/fashion-mnist"});
  specs.push_back({"cifar10", 3, 32, 32,
                   {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"},
                   {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}, ""});
  // Fine labels, in label order (alphabetical, as in the archive's fine_label_names.txt).
  specs.push_back({"cifar100", 3, 32, 32,
                   {"apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
                    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
                    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
                    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
                    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
                    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
                    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
                    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
                    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
                    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"},
                   {0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}, ""});
  return specs;
}

std::shared_ptr<const Dataset> with_tensors(const Dataset& like, at::Tensor images, at::Tensor labels,
                                            std::shared_ptr<const ImageSource> source = nullptr) {
  auto out = std::make_shared<Dataset>();
  out->name = like.name;
  out->class_names = like.class_names;
  out->mean = like.mean;
  out->std = like.std;
  out->images = std::move(images);
  out->labels = std::move(labels);
  out->source = std::move(source);
  return out;
}

}  // namespace

const std::vector<DatasetSpec>& dataset_catalog() {
  static const std::vector<DatasetSpec> catalog = build_catalog();
  return catalog;
}

const DatasetSpec& dataset_spec(const std::string& name) {
  std::string known;
  for (const auto& spec : dataset_catalog()) {
    if (spec.name == name) return spec;
    known += (known.empty() ? "'" : ", '") + spec.name + "'";
  }
  fail(ErrorKind::InvalidArgument, "unknown dataset '" + name + "': expected one of " + known);
}

Split parse_split(const std::string& split) {
  if (split == "train") return Split::Train;
  if (split == "test") return Split::Test;
  fail(ErrorKind::InvalidArgument, "unknown split '" + split + "': expected 'train' or 'test'");
}

int64_t Dataset::channels() const { return source ? source->spec().channels : images.size(1); }
int64_t Dataset::height() const { return source ? source->spec().size : images.size(2); }
int64_t Dataset::width() const { return source ? source->spec().size : images.size(3); }

void Dataset::validate() const {
  if (source) {
    if (images.defined()) fail(ErrorKind::InvalidArgument, "a streamed dataset holds no images tensor");
    if (!labels.defined() || labels.scalar_type() != at::kLong || labels.dim() != 1 || labels.size(0) != source->size()) {
      fail(ErrorKind::InvalidArgument, "a streamed dataset needs one int64 label per sample");
    }
    if (source->size() < 1) fail(ErrorKind::InvalidArgument, "a dataset needs at least one sample");
    if (source->size() > kMaxSamples) fail(ErrorKind::InvalidArgument, "a dataset holds at most 2^31 - 1 samples");
  } else {
    validate_images();
  }
  validate_common();
}

void Dataset::validate_images() const {
  if (!images.defined() || !labels.defined()) fail(ErrorKind::InvalidArgument, "a dataset needs images and labels");
  if (images.scalar_type() != at::kByte) fail(ErrorKind::InvalidType, "dataset images must be uint8 (pixel values 0..255)");
  if (labels.scalar_type() != at::kLong) fail(ErrorKind::InvalidType, "dataset labels must be int64");
  if (!images.device().is_cpu() || !labels.device().is_cpu()) fail(ErrorKind::InvalidArgument, "dataset tensors must be on the CPU");
  if (images.dim() != 4) {
    fail(ErrorKind::InvalidArgument, "dataset images must be [N, C, H, W], got shape " + c10::str(images.sizes()));
  }
  if (labels.dim() != 1 || labels.size(0) != images.size(0)) {
    fail(ErrorKind::InvalidArgument, "dataset labels must be [N] with N = " + std::to_string(images.size(0)) +
                                         " (the number of images), got shape " + c10::str(labels.sizes()));
  }
  if (images.size(0) < 1) fail(ErrorKind::InvalidArgument, "a dataset needs at least one sample");
  if (images.size(0) > kMaxSamples) fail(ErrorKind::InvalidArgument, "a dataset holds at most 2^31 - 1 samples");
  for (int d = 1; d < 4; ++d) {
    if (images.size(d) < 1 || images.size(d) > kMaxSide) {
      fail(ErrorKind::InvalidArgument, "dataset image dimensions must be between 1 and 65536, got shape " + c10::str(images.sizes()));
    }
  }
  if (!images.is_contiguous() || !labels.is_contiguous()) fail(ErrorKind::InvalidArgument, "dataset tensors must be contiguous");
}

void Dataset::validate_common() const {
  if (class_names.empty()) fail(ErrorKind::InvalidArgument, "a dataset needs at least one class");
  if (class_names.size() > 65536) fail(ErrorKind::InvalidArgument, "a dataset has at most 65536 classes");
  const auto channels = static_cast<size_t>(this->channels());
  if (mean.size() != channels || std.size() != channels) {
    fail(ErrorKind::InvalidArgument, "mean and std need one value per channel (" + std::to_string(channels) + "), got " +
                                         std::to_string(mean.size()) + " and " + std::to_string(std.size()));
  }
  for (size_t c = 0; c < channels; ++c) {
    if (!std::isfinite(mean[c]) || !std::isfinite(std[c]) || !(std[c] > 0)) {
      fail(ErrorKind::InvalidArgument, "mean must be finite and std finite and positive, channel " + std::to_string(c) +
                                           " has mean " + std::to_string(mean[c]) + " and std " + std::to_string(std[c]));
    }
  }
  const int64_t* l = labels.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.size(0); ++i) {
    if (l[i] < 0 || l[i] >= num_classes()) {
      fail(ErrorKind::InvalidArgument, "label " + std::to_string(l[i]) + " at index " + std::to_string(i) +
                                           " is out of range for " + std::to_string(num_classes()) + " classes");
    }
  }
}

at::Tensor checked_labels(const uint8_t* bytes, int64_t count, int64_t num_classes, const std::string& file) {
  at::Tensor labels = at::empty({count}, at::TensorOptions().dtype(at::kLong));
  int64_t* out = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t v = bytes[i];
    if (v >= num_classes) {
      fail(ErrorKind::Io, file + ": label " + std::to_string(v) + " at index " + std::to_string(i) + " is out of range: " +
                              std::to_string(num_classes) + " classes (0.." + std::to_string(num_classes - 1) + ")");
    }
    out[i] = v;
  }
  return labels;
}

std::shared_ptr<const Dataset> load_dataset(const std::string& name, const std::string& root_arg, Split split, int64_t limit) {
  const DatasetSpec& spec = dataset_spec(name);
  if (limit < 0) fail(ErrorKind::InvalidArgument, "limit must not be negative, got " + std::to_string(limit));
  const std::string root = root_arg.empty() ? spec.default_root : root_arg;
  if (root.empty()) fail(ErrorKind::InvalidArgument, name + " has no default folder: pass the folder holding its files");
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) {
    fail(ErrorKind::Io, "dataset folder " + root + " does not exist" +
                            (root_arg.empty() ? " (the default for " + name + "; pass the folder holding its files)" : ""));
  }
  std::shared_ptr<Dataset> loaded =
      name == "cifar10" || name == "cifar100" ? load_cifar_dataset(spec, root, split) : load_idx_dataset(spec, root, split);
  loaded->validate();
  if (limit > 0 && limit < loaded->size()) return take(*loaded, limit);
  return loaded;
}

std::shared_ptr<const Dataset> subset(const Dataset& dataset, const std::vector<int64_t>& indices) {
  for (int64_t i : indices) {
    if (i < 0 || i >= dataset.size()) {
      fail(ErrorKind::InvalidArgument, "index " + std::to_string(i) + " is out of range for a dataset of " +
                                           std::to_string(dataset.size()) + " samples");
    }
  }
  at::Tensor index = at::tensor(indices, at::TensorOptions().dtype(at::kLong));
  at::Tensor labels = dataset.labels.index_select(0, index).contiguous();
  if (dataset.source) return with_tensors(dataset, at::Tensor(), std::move(labels), dataset.source->subset(indices));
  return with_tensors(dataset, dataset.images.index_select(0, index).contiguous(), std::move(labels));
}

std::shared_ptr<const Dataset> take(const Dataset& dataset, int64_t n) {
  if (n < 1 || n > dataset.size()) {
    fail(ErrorKind::InvalidArgument, "take(" + std::to_string(n) + "): the dataset has " + std::to_string(dataset.size()) +
                                         " samples; n must be between 1 and that");
  }
  if (dataset.source) {
    std::vector<int64_t> first(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) first[static_cast<size_t>(i)] = i;
    return subset(dataset, first);
  }
  // clone(): a narrow view would keep the whole original buffer alive.
  return with_tensors(dataset, dataset.images.narrow(0, 0, n).clone(), dataset.labels.narrow(0, 0, n).clone());
}

ValidationSplit split_validation(const Dataset& dataset, int64_t validation_size, uint64_t seed) {
  const int64_t n = dataset.size();
  if (validation_size < 1 || validation_size >= n) {
    fail(ErrorKind::InvalidArgument, "the validation split must hold between 1 and " + std::to_string(n - 1) +
                                         " samples of this " + std::to_string(n) + "-sample dataset, got " +
                                         std::to_string(validation_size));
  }
  const std::vector<int64_t> order =
      seeded_permutation(n, hash_words({seed, static_cast<uint64_t>(Stream::ValidationSplit), static_cast<uint64_t>(n)}));
  std::vector<int64_t> validation(order.begin(), order.begin() + validation_size);
  std::vector<int64_t> train(order.begin() + validation_size, order.end());
  std::sort(validation.begin(), validation.end());
  std::sort(train.begin(), train.end());
  return {subset(dataset, train), subset(dataset, validation)};
}

}  // namespace bnn::data
