#include "data/image_source.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "data/dataset.h"
#include "data/worker_pool.h"
#include "image/decode.h"

namespace bnn::data {

namespace fs = std::filesystem;

namespace {

// A training photograph is a few MB at most; anything far larger is not an image we should read
// whole into memory on the strength of its name.
constexpr uint64_t kMaxImageBytes = uint64_t{1} << 28;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool supported_extension(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// torchvision's IMG_EXTENSIONS beyond ours: files a user would expect to be read, said so.
bool other_image_extension(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".ppm" || ext == ".bmp" || ext == ".pgm" || ext == ".tif" || ext == ".tiff" || ext == ".webp";
}

// Every folder below `dir` (itself included), with the image files directly in it, as
// os.walk(top, followlinks=True) yields them.
void walk(const fs::path& dir, std::vector<std::pair<std::string, std::vector<std::string>>>& folders,
          std::vector<std::pair<std::string, std::string>>& skipped, int depth) {
  if (depth > 64) fail(ErrorKind::Io, dir.string() + ": folders nested more than 64 deep (a symbolic link loop?)");
  std::vector<fs::path> subdirs;
  std::vector<std::string> here;
  std::error_code ec;
  for (fs::directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      subdirs.push_back(it->path());
    } else if (supported_extension(it->path())) {
      here.push_back(it->path().filename().string());
    } else if (other_image_extension(it->path())) {
      skipped.emplace_back(it->path().string(), "unsupported image format (bnn-torch reads JPEG and PNG)");
    }
  }
  if (ec) fail(ErrorKind::Io, dir.string() + ": cannot list the folder: " + ec.message());
  folders.emplace_back(dir.string(), std::move(here));
  for (const auto& d : subdirs) walk(d, folders, skipped, depth + 1);
}

// torchvision's make_dataset: `for root, _, fnames in sorted(os.walk(...)): for f in sorted(fnames)`.
// Sorting the walk's tuples orders the folders by their whole path (so "a/sub-b" and "a/sub.c"
// come before "a/sub/deeper": '-' and '.' sort before '/'), and Python compares str by code
// point, which for UTF-8 is byte order.
std::vector<std::string> image_files_below(const fs::path& dir, std::vector<std::pair<std::string, std::string>>& skipped) {
  std::vector<std::pair<std::string, std::vector<std::string>>> folders;
  walk(dir, folders, skipped, 0);
  std::sort(folders.begin(), folders.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& [folder, names] : folders) {
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out.push_back((fs::path(folder) / n).string());
  }
  return out;
}

}  // namespace

ImageFiles scan_image_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail(ErrorKind::Io, "image folder " + root + " does not exist or is not a folder");
  std::vector<std::string> classes;
  for (fs::directory_iterator it(root, fs::directory_options::follow_directory_symlink, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_directory(type_ec)) classes.push_back(it->path().filename().string());
  }
  if (ec) fail(ErrorKind::Io, root + ": cannot list the folder: " + ec.message());
  if (classes.empty()) fail(ErrorKind::Io, root + ": no class folders (expected root/<class>/<image files>, as torchvision's ImageFolder)");
  std::sort(classes.begin(), classes.end());
  if (classes.size() > 65536) fail(ErrorKind::Io, root + ": " + std::to_string(classes.size()) + " class folders; at most 65536 are supported");
  ImageFiles out;
  out.class_names = classes;
  for (size_t c = 0; c < classes.size(); ++c) {
    for (auto& f : image_files_below(fs::path(root) / classes[c], out.skipped)) {
      out.paths.push_back(std::move(f));
      out.labels.push_back(static_cast<int64_t>(c));
    }
  }
  if (out.paths.empty()) fail(ErrorKind::Io, root + ": no JPEG or PNG files in its " + std::to_string(classes.size()) + " class folders");
  if (out.paths.size() > 0x7fffffff) fail(ErrorKind::Io, root + ": more than 2^31 - 1 images");
  return out;
}

ImageFiles read_image_list(const std::string& list_file, std::vector<std::string> class_names) {
  std::ifstream in(list_file);
  if (!in) fail(ErrorKind::Io, list_file + ": cannot open the list file: " + std::strerror(errno));
  const fs::path base = fs::path(list_file).parent_path();
  ImageFiles out;
  std::string line;
  int64_t line_number = 0;
  int64_t max_label = -1;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t");
    const auto split = line.find_last_of(" \t", last);
    const std::string where = list_file + ":" + std::to_string(line_number);
    if (split == std::string::npos || split < first) fail(ErrorKind::Io, where + ": expected 'path label', got '" + line + "'");
    const std::string label_text = line.substr(split + 1, last - split);
    const auto path_end = line.find_last_not_of(" \t", split);
    const std::string path_text = line.substr(first, path_end - first + 1);
    int64_t label = 0;
    try {
      size_t used = 0;
      label = std::stoll(label_text, &used);
      if (used != label_text.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      fail(ErrorKind::Io, where + ": the label '" + label_text + "' is not an integer");
    }
    if (label < 0 || label >= 65536) fail(ErrorKind::Io, where + ": label " + std::to_string(label) + " is outside 0..65535");
    if (!class_names.empty() && label >= static_cast<int64_t>(class_names.size())) {
      fail(ErrorKind::Io, where + ": label " + std::to_string(label) + " but only " + std::to_string(class_names.size()) + " class names were given");
    }
    const fs::path p(path_text);
    out.paths.push_back((p.is_absolute() ? p : base / p).string());
    out.labels.push_back(label);
    max_label = std::max(max_label, label);
  }
  if (in.bad()) fail(ErrorKind::Io, list_file + ": read error");
  if (out.paths.empty()) fail(ErrorKind::Io, list_file + ": the list names no images");
  if (class_names.empty()) {
    for (int64_t c = 0; c <= max_label; ++c) class_names.push_back(std::to_string(c));
  }
  out.class_names = std::move(class_names);
  return out;
}

std::vector<int64_t> spread_indices(int64_t n, int64_t count) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(static_cast<int64_t>((static_cast<__int128>(i) * n) / count));
  return out;
}

std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(ErrorKind::Io, path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  std::string problem;
  if (std::fseek(f, 0, SEEK_END) != 0) {
    problem = "cannot seek";
  } else {
    const long size = std::ftell(f);
    if (size < 0) {
      problem = "cannot tell its size (not a regular file?)";
    } else if (static_cast<uint64_t>(size) > max_bytes) {
      problem = "is " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) + " an image may have";
    } else {
      bytes.resize(static_cast<size_t>(size));
      std::rewind(f);
      if (!bytes.empty() && std::fread(bytes.data(), 1, bytes.size(), f) != bytes.size()) problem = "read error";
    }
  }
  std::fclose(f);
  if (!problem.empty()) fail(ErrorKind::Io, path + ": " + problem);
  return bytes;
}

void check_image_files(ImageFiles& files, bool skip_bad, int threads) {
  const auto n = static_cast<int64_t>(files.paths.size());
  std::vector<std::string> problems(static_cast<size_t>(n));
  WorkerPool pool(threads);
  pool.parallel_for(n, [&](int64_t i) {
    const std::string& path = files.paths[static_cast<size_t>(i)];
    try {
      // The header is enough to know the format and size; a damaged body shows when decoded.
      std::vector<uint8_t> head;
      {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) fail(ErrorKind::Io, path + ": cannot open: " + std::strerror(errno));
        head.resize(64 * 1024);
        head.resize(std::fread(head.data(), 1, head.size(), f));
        std::fclose(f);
      }
      image::probe(head.data(), head.size(), path);
    } catch (const Error& e) {
      problems[static_cast<size_t>(i)] = e.what();
    }
  });
  ImageFiles kept;
  kept.class_names = files.class_names;
  kept.skipped = std::move(files.skipped);
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i);
    if (problems[k].empty()) {
      kept.paths.push_back(std::move(files.paths[k]));
      kept.labels.push_back(files.labels[k]);
      continue;
    }
    if (!skip_bad) fail(ErrorKind::Io, problems[k] + " (skipBad / --skip-bad leaves such files out)");
    // The message already starts with the path.
    const std::string& p = files.paths[k];
    std::string reason = problems[k].rfind(p, 0) == 0 ? problems[k].substr(std::min(problems[k].size(), p.size() + 2)) : problems[k];
    kept.skipped.emplace_back(p, reason);
  }
  if (kept.paths.empty()) fail(ErrorKind::Io, "no readable images: all " + std::to_string(n) + " files were bad");
  files = std::move(kept);
}

std::shared_ptr<Dataset> decode_to_memory(const ImageFiles& files, int channels, int threads) {
  if (channels != 1 && channels != 3) fail(ErrorKind::InvalidArgument, "channels must be 1 or 3, got " + std::to_string(channels));
  const auto n = static_cast<int64_t>(files.paths.size());
  // The first image fixes the size every other must have.
  const std::vector<uint8_t> first = read_file(files.paths[0], kMaxImageBytes);
  const image::ImageInfo info = image::probe(first.data(), first.size(), files.paths[0]);
  const int64_t h = info.height, w = info.width, c = channels;
  if (h * w * c * n > (int64_t{1} << 36)) {
    fail(ErrorKind::InvalidArgument, std::to_string(n) + " images of " + std::to_string(w) + "x" + std::to_string(h) +
                                         " are too many to hold in memory: give the dataset a transform so that it streams from disk");
  }
  at::Tensor images = at::empty({n, c, h, w}, at::TensorOptions().dtype(at::kByte));
  uint8_t* out = images.data_ptr<uint8_t>();
  WorkerPool pool(threads);
  pool.parallel_for(n, [&](int64_t i) {
    const std::string& path = files.paths[static_cast<size_t>(i)];
    const std::vector<uint8_t> bytes = read_file(path, kMaxImageBytes);
    image::DecodeRequest request;
    request.channels = channels;
    const image::Decoded d = image::decode(bytes.data(), bytes.size(), request, path);
    if (d.image.width != w || d.image.height != h) {
      fail(ErrorKind::Io, path + ": is " + std::to_string(d.image.width) + "x" + std::to_string(d.image.height) + " but " + files.paths[0] +
                              " is " + std::to_string(w) + "x" + std::to_string(h) +
                              ": images held in memory must share one size (give the dataset a transform to resize them)");
    }
    // HWC -> CHW.
    uint8_t* dst = out + i * c * h * w;
    const uint8_t* src = d.image.pixels.data();
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) dst[(k * h + y) * w + x] = src[(y * w + x) * c + k];
  });
  auto dataset = std::make_shared<Dataset>();
  dataset->class_names = files.class_names;
  dataset->images = images;
  dataset->labels = at::tensor(files.labels, at::TensorOptions().dtype(at::kLong));
  // Per-channel statistics of pixel / 255, as the catalogue's constants were computed; integer
  // sums are exact whatever the order.
  std::vector<uint64_t> sum(static_cast<size_t>(c)), squares(static_cast<size_t>(c));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c; ++k) {
      const uint8_t* p = out + (i * c + k) * h * w;
      uint64_t s1 = 0, s2 = 0;
      for (int64_t j = 0; j < h * w; ++j) {
        s1 += p[j];
        s2 += static_cast<uint64_t>(p[j]) * p[j];
      }
      sum[static_cast<size_t>(k)] += s1;
      squares[static_cast<size_t>(k)] += s2;
    }
  }
  const double count = static_cast<double>(n * h * w);
  for (int64_t k = 0; k < c; ++k) {
    const double m = static_cast<double>(sum[static_cast<size_t>(k)]) / count / 255.0;
    const double var = static_cast<double>(squares[static_cast<size_t>(k)]) / count / (255.0 * 255.0) - m * m;
    dataset->mean.push_back(m);
    dataset->std.push_back(std::max(std::sqrt(std::max(var, 0.0)), 1e-6));
  }
  return dataset;
}

std::shared_ptr<ImageSource> ImageSource::with_all(size_t count, const image::TransformSpec& spec) {
  image::validate(spec);
  auto out = std::shared_ptr<ImageSource>(new ImageSource());
  out->indices_.resize(count);
  for (size_t i = 0; i < count; ++i) out->indices_[i] = static_cast<int64_t>(i);
  out->spec_ = spec;
  return out;
}

std::shared_ptr<const ImageSource> ImageSource::from_files(std::shared_ptr<const ImageFiles> files, image::TransformSpec spec,
                                                           bool skip_bad) {
  auto out = with_all(files->paths.size(), spec);
  out->skip_bad_ = skip_bad;
  out->files_ = std::move(files);
  return out;
}

std::shared_ptr<const ImageSource> ImageSource::from_store(std::shared_ptr<const image::Store> store, image::TransformSpec spec) {
  auto out = with_all(store->size(), spec);
  out->store_ = std::move(store);
  return out;
}

std::shared_ptr<const ImageSource> ImageSource::subset(const std::vector<int64_t>& indices) const {
  auto out = std::shared_ptr<ImageSource>(new ImageSource(*this));
  out->indices_.clear();
  out->indices_.reserve(indices.size());
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) fail(ErrorKind::InvalidArgument, "index " + std::to_string(i) + " is out of range for " + std::to_string(size()) + " images");
    out->indices_.push_back(indices_[static_cast<size_t>(i)]);
  }
  return out;
}

std::vector<int64_t> ImageSource::labels() const {
  std::vector<int64_t> out;
  out.reserve(indices_.size());
  for (int64_t k : indices_) out.push_back(files_ ? files_->labels[static_cast<size_t>(k)] : static_cast<int64_t>(store_->label(static_cast<size_t>(k))));
  return out;
}

const std::vector<std::string>& ImageSource::class_names() const { return files_ ? files_->class_names : store_->class_names(); }

std::string ImageSource::origin() const { return files_ ? "image files" : store_->path(); }

int64_t ImageSource::render(int64_t i, uint64_t seed, int64_t epoch, uint8_t* dst) const {
  if (i < 0 || i >= size()) fail(ErrorKind::InvalidArgument, "sample " + std::to_string(i) + " is out of range");
  if (!skip_bad_) {
    render_one(i, seed, epoch, dst);
    return i;
  }
  // A bounded search: a dataset whose files are nearly all corrupt should fail, not crawl.
  const int64_t tries = std::min<int64_t>(size(), 64);
  for (int64_t k = 0; k < tries; ++k) {
    const int64_t j = (i + k) % size();
    try {
      render_one(j, seed, epoch, dst);
      return j;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Io) throw;
      const std::string& path = files_->paths[static_cast<size_t>(indices_[static_cast<size_t>(j)])];
      const std::string what = e.what();
      std::lock_guard<std::mutex> lock(skipped_->mutex);
      skipped_->files.emplace(path, what.rfind(path + ": ", 0) == 0 ? what.substr(path.size() + 2) : what);
    }
  }
  fail(ErrorKind::Io, "sample " + std::to_string(i) + " and the " + std::to_string(tries - 1) +
                          " after it are all corrupt: the dataset is too damaged to read (see the skipped files)");
}

std::vector<std::pair<std::string, std::string>> ImageSource::skipped_while_reading() const {
  std::lock_guard<std::mutex> lock(skipped_->mutex);
  return {skipped_->files.begin(), skipped_->files.end()};
}

void ImageSource::render_one(int64_t i, uint64_t seed, int64_t epoch, uint8_t* dst) const {
  const auto k = static_cast<size_t>(indices_[static_cast<size_t>(i)]);
  if (store_) {
    image::render_record(*store_, k, spec_, seed, epoch, i, dst);
    return;
  }
  const std::string& path = files_->paths[k];
  const std::vector<uint8_t> bytes = read_file(path, kMaxImageBytes);
  image::render(bytes.data(), bytes.size(), spec_, seed, epoch, i, dst, path);
}

}  // namespace bnn::data
