#include "data/cifar.h"

#include <filesystem>
#include <vector>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "data/file_reader.h"

namespace bnn::data {

namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kChannels = 3;
constexpr int64_t kPixels = kChannels * kSide * kSide;
constexpr int64_t kMaxRecords = 0x7fffffff;

struct Layout {
  int64_t label_bytes;   // 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine)
  int64_t coarse_classes;  // 0 when there is no coarse label
  std::vector<std::string> train_files;
  std::vector<std::string> test_files;
  std::string archive_folder;
};

Layout layout_for(const DatasetSpec& spec) {
  if (spec.name == "cifar10") {
    return {1, 0, {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
            {"test_batch.bin"}, "cifar-10-batches-bin"};
  }
  return {2, 20, {"train.bin"}, {"test.bin"}, "cifar-100-binary"};
}

std::string resolve_folder(const std::string& root, const Layout& layout, const std::string& first_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::path(root) / first_file, ec)) return root;
  const fs::path nested = fs::path(root) / layout.archive_folder;
  if (fs::exists(nested / first_file, ec)) return nested.string();
  fail(ErrorKind::Io, root + ": " + first_file + " is not there (nor in " + layout.archive_folder + "/)");
}

}  // namespace

std::shared_ptr<Dataset> load_cifar_dataset(const DatasetSpec& spec, const std::string& root, Split split) {
  const Layout layout = layout_for(spec);
  const auto& names = split == Split::Train ? layout.train_files : layout.test_files;
  const std::string folder = resolve_folder(root, layout, names.front());
  const int64_t record = layout.label_bytes + kPixels;
  const int64_t num_classes = static_cast<int64_t>(spec.class_names.size());

  // Sizes first, for all files: nothing is allocated or read until every file checks out.
  std::vector<std::unique_ptr<FileReader>> files;
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const auto& name : names) {
    auto file = std::make_unique<FileReader>((std::filesystem::path(folder) / name).string());
    if (file->gzipped()) {
      fail(ErrorKind::Io, file->path() + ": is gzip-compressed; CIFAR batch files are read uncompressed "
                                         "(unpack the official *-binary.tar.gz archive)");
    }
    const uint64_t size = file->file_size();
    if (size == 0) fail(ErrorKind::Io, file->path() + ": is empty");
    if (size % static_cast<uint64_t>(record) != 0) {
      fail(ErrorKind::Io, file->path() + ": " + std::to_string(size) + " bytes is not a whole number of " +
                              std::to_string(record) + "-byte records (" + std::to_string(size / record) + " records and " +
                              std::to_string(size % record) + " bytes over)");
    }
    const auto count = static_cast<int64_t>(size / static_cast<uint64_t>(record));
    if (count > kMaxRecords - total) fail(ErrorKind::Io, file->path() + ": more than 2^31 - 1 records in the split");
    total += count;
    counts.push_back(count);
    files.push_back(std::move(file));
  }

  auto dataset = std::make_shared<Dataset>();
  dataset->name = spec.name;
  dataset->class_names = spec.class_names;
  dataset->mean = spec.mean;
  dataset->std = spec.std;
  dataset->images = at::empty({total, kChannels, kSide, kSide}, at::TensorOptions().dtype(at::kByte));
  dataset->labels = at::empty({total}, at::TensorOptions().dtype(at::kLong));
  uint8_t* pixels = dataset->images.data_ptr<uint8_t>();
  int64_t* labels = dataset->labels.data_ptr<int64_t>();

  constexpr int64_t kChunk = 1024;  // records per read: bounded scratch memory
  std::vector<uint8_t> buffer(static_cast<size_t>(kChunk * record));
  int64_t at = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    FileReader& in = *files[f];
    for (int64_t done = 0; done < counts[f];) {
      const int64_t n = std::min(kChunk, counts[f] - done);
      const size_t want = static_cast<size_t>(n * record);
      const size_t got = in.read(buffer.data(), want);
      if (got < want) {
        fail(ErrorKind::Io, in.path() + ": truncated while reading: record " + std::to_string(done + static_cast<int64_t>(got / record)) +
                                " of " + std::to_string(counts[f]) + " is incomplete (the file shrank?)");
      }
      for (int64_t r = 0; r < n; ++r) {
        const uint8_t* rec = buffer.data() + r * record;
        const int64_t index = done + r;
        if (layout.coarse_classes > 0 && rec[0] >= layout.coarse_classes) {
          fail(ErrorKind::Io, in.path() + ": coarse label " + std::to_string(rec[0]) + " in record " + std::to_string(index) +
                                  " is out of range: " + spec.name + " has " + std::to_string(layout.coarse_classes) +
                                  " coarse classes (0.." + std::to_string(layout.coarse_classes - 1) + ")");
        }
        const uint8_t label = rec[layout.label_bytes - 1];
        if (label >= num_classes) {
          fail(ErrorKind::Io, in.path() + ": label " + std::to_string(label) + " in record " + std::to_string(index) +
                                  " is out of range: " + spec.name + " has " + std::to_string(num_classes) + " classes (0.." +
                                  std::to_string(num_classes - 1) + ")");
        }
        labels[at] = label;
        std::memcpy(pixels + at * kPixels, rec + layout.label_bytes, kPixels);
        ++at;
      }
      done += n;
    }
    in.expect_end(std::to_string(counts[f]) + " records its size announced");
  }
  return dataset;
}

}  // namespace bnn::data
