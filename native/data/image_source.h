#pragma once
// Image datasets read from disk: a folder in torchvision's ImageFolder layout, a list file ("path
// label" per line), or a prepared store (image/store.h). A streamed source decodes and transforms
// each sample when a batch asks for it (image/transforms.h) and keeps only the file list, so
// memory does not grow with the dataset; small images of one size can instead be decoded once
// into an in-memory Dataset (decode_to_memory) and augmented like MNIST or CIFAR.
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "image/store.h"
#include "image/transforms.h"

namespace bnn::data {

// Image files and their labels, in the dataset's order.
struct ImageFiles {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  std::vector<std::string> class_names;
  // Files left out, with why (unsupported extension, unreadable, not an image ...).
  std::vector<std::pair<std::string, std::string>> skipped;
};

// torchvision's ImageFolder: classes are the sub-folder names sorted by code point (class i is
// the i-th), files are every *.jpg / *.jpeg / *.png (any case) below a class folder, found as
// os.walk(followlinks=True) finds them and sorted the same way, so indices match torchvision's.
// Other files are listed in `skipped`. Fails (Io) when the folder is missing or has no classes.
ImageFiles scan_image_folder(const std::string& root);

// A list file: one "path label" per line (a path may contain spaces; the label is the last
// field), paths relative to the list's folder unless absolute, '#' starts a comment. Class names
// come from `class_names` when given (labels must be below their count), else "0".."K-1".
ImageFiles read_image_list(const std::string& list_file, std::vector<std::string> class_names);

// Keeps only the files whose header is a JPEG or PNG that can be decoded (probe), moving the
// others to `skipped`; with `skip_bad` false the first bad file is an Io error naming it.
void check_image_files(ImageFiles& files, bool skip_bad, int threads);

// Where a streamed dataset's samples come from, and the transform that renders them.
class ImageSource {
 public:
  // With `skip_bad`, a file whose body turns out corrupt when decoded is replaced by the next
  // sample that decodes (so the batch keeps its size and the choice is the same on every run and
  // rank) and recorded in skipped_while_reading(); without it, it is an Io error naming the file.
  static std::shared_ptr<const ImageSource> from_files(std::shared_ptr<const ImageFiles> files, image::TransformSpec spec,
                                                       bool skip_bad = false);
  static std::shared_ptr<const ImageSource> from_store(std::shared_ptr<const image::Store> store, image::TransformSpec spec);

  // The same source restricted to `indices` (of this source), in that order.
  std::shared_ptr<const ImageSource> subset(const std::vector<int64_t>& indices) const;

  int64_t size() const { return static_cast<int64_t>(indices_.size()); }
  const image::TransformSpec& spec() const { return spec_; }
  // Labels, in order, as int64 values in [0, class count).
  std::vector<int64_t> labels() const;
  const std::vector<std::string>& class_names() const;
  // Where the samples are read from: the folder/list's files or the store's path.
  std::string origin() const;

  // Renders sample i (size x size x channels uint8 HWC) with the draw of (seed, epoch, i), and
  // returns the sample actually rendered: i, or with skip_bad the one standing in for a corrupt
  // file. Bad data is otherwise an Io error naming the file (or store record). Thread-safe.
  int64_t render(int64_t i, uint64_t seed, int64_t epoch, uint8_t* dst) const;

  // Files found corrupt while reading (skip_bad), with why; shared by the subsets of a source.
  std::vector<std::pair<std::string, std::string>> skipped_while_reading() const;

 private:
  ImageSource() = default;
  // Every record of a source with `count` of them, in order.
  static std::shared_ptr<ImageSource> with_all(size_t count, const image::TransformSpec& spec);
  std::shared_ptr<const ImageFiles> files_;
  std::shared_ptr<const image::Store> store_;
  void render_one(int64_t i, uint64_t seed, int64_t epoch, uint8_t* dst) const;

  std::vector<int64_t> indices_;  // position -> file or record number
  image::TransformSpec spec_;
  bool skip_bad_ = false;
  struct Skipped {
    std::mutex mutex;
    std::set<std::pair<std::string, std::string>> files;
  };
  std::shared_ptr<Skipped> skipped_ = std::make_shared<Skipped>();
};

struct Dataset;

// Decodes every file once into an in-memory dataset (uint8 [N, C, H, W], no transform), for
// small images that all share one size (an error names the first that does not). Its mean and
// std are measured over all its pixels.
std::shared_ptr<Dataset> decode_to_memory(const ImageFiles& files, int channels, int threads);

// `count` of the positions 0..n-1, evenly spread (floor(i * n / count)): a limit that keeps every
// class of a class-sorted list.
std::vector<int64_t> spread_indices(int64_t n, int64_t count);

// Reads a whole file (at most `max_bytes`); Io error naming it when it cannot.
std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes);

}  // namespace bnn::data
