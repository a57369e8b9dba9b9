#pragma once
// The prepared store: a whole image dataset in ONE memory-mapped file, each image re-encoded at a
// bounded size (in the spirit of FFCV), so that an epoch reads one file instead of a million and
// decodes small JPEGs instead of camera-sized ones.
//
// File layout, version 1. Integers are little-endian; offsets count from the start of the file.
//
//   0            header, 64 bytes
//                  0  char[8] magic "BNNIMGST"
//                  8  u32     format version = 1
//                 12  u32     header size = 64
//                 16  u64     record count N
//                 24  u32     class count K (>= 1)
//                 28  u32     max side: the writer's bound on each image's shorter side
//                 32  u64     class table offset
//                 40  u64     index offset (a multiple of 8)
//                 48  u64     file size
//                 56  u32     crc32 of the class table and the index, as one byte run
//                 60  u32     crc32 of header bytes 0..59
//   64           record data: each record starts on a 16-byte boundary; order is arbitrary
//   class table  K entries: u64 record count with this label, u32 name length L, L bytes of
//                UTF-8 name (no terminator); class i is label i
//   index        N entries of 32 bytes, in record order:
//                  0  u64 data offset     8  u32 length      12  u32 label
//                 16  u16 width          18  u16 height      20  u8  encoding (0 JPEG, 1 PNG, 2 raw)
//                 21  u8  channels (of the decoded image: 1 or 3; raw records hold exactly these)
//                 22  u16 zero           24  u32 crc32 of the record's bytes      28  u32 zero
//
// The class table and index come last because their sizes are known only when writing ends;
// the header, written last of all, points at them. open() checks every offset, length and count
// against the file before anything is read through them, so a hostile or damaged file yields an
// Io error, never an out-of-bounds read. (Truncating the file while it is mapped is outside that
// promise: the kernel answers with SIGBUS.)
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "image/transforms.h"

namespace bnn::image {

enum class Encoding : uint8_t { Jpeg = 0, Png = 1, Raw = 2 };

struct StoreRecord {
  const uint8_t* data = nullptr;  // points into the mapping; valid while the Store lives
  size_t size = 0;
  uint32_t label = 0;
  int width = 0;
  int height = 0;
  Encoding encoding = Encoding::Jpeg;
  int channels = 0;
};

class Store {
 public:
  // Maps and validates `path`; throws Io naming the file and what is wrong.
  static std::shared_ptr<const Store> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  size_t size() const { return count_; }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  const std::vector<uint64_t>& class_counts() const { return class_counts_; }
  int max_side() const { return max_side_; }

  // Record i's metadata and bytes, after checking its crc32 (an Io error names the file and the
  // record on a mismatch). Thread-safe.
  StoreRecord record(size_t i) const;
  // Label only, without touching the record's bytes (for sharding and class balancing).
  uint32_t label(size_t i) const;
  // Drops the record's pages from this process's resident set once it has been decoded (the
  // kernel's page cache keeps them): an epoch over a store larger than memory then leaves the
  // resident size flat instead of growing with every record touched.
  void release(const StoreRecord& record) const;

 private:
  Store() = default;
  const uint8_t* entry(size_t i) const;

  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  size_t count_ = 0;
  const uint8_t* index_ = nullptr;
  int max_side_ = 0;
  std::vector<std::string> class_names_;
  std::vector<uint64_t> class_counts_;
};

// One sample of a store record through the transforms (raw records skip decoding). Error
// messages name the store and the record.
void render_record(const Store& store, size_t i, const TransformSpec& spec, uint64_t seed, int64_t epoch,
                   int64_t sample, uint8_t* dst);

// ---- writing ----------------------------------------------------------------------------------

struct PrepareOptions {
  int max_side = 256;      // shrink (PIL bilinear, antialiased) until the shorter side is at most this
  int raw_max_side = 64;   // images with both sides at most this are stored as raw pixels
  int quality = 90;        // JPEG quality when re-encoding
};

struct PreparedRecord {
  std::vector<uint8_t> bytes;
  Encoding encoding = Encoding::Jpeg;
  int width = 0;
  int height = 0;
  int channels = 0;
};

// Turns one source file's bytes into a store record: raw pixels for small images, the original
// bytes for a JPEG already within max_side, otherwise decoded, shrunk and re-encoded as JPEG.
// Grey sources stay 1-channel. Throws Io (naming `name`) for bad data.
PreparedRecord prepare_record(const uint8_t* data, size_t size, const PrepareOptions& options,
                              std::string_view name = "image");

// Writes a store to `<path>.partial-<pid>` and renames it to `path` only in finish(), after an
// fsync, so a crash never leaves a half-valid store under the real name.
class StoreWriter {
 public:
  StoreWriter(std::string path, std::vector<std::string> class_names, int max_side);
  // Removes the partial file unless finish() succeeded.
  ~StoreWriter();
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Adds the record for source `position` (0, 1, ... in the dataset's order). Thread-safe; calls
  // may come in any order from any number of threads. Positions never added (skipped bad files)
  // are left out, and the store keeps the others in position order.
  void add(uint64_t position, const PreparedRecord& record, uint32_t label);
  // Writes the class table, index and header, fsyncs and renames. Call once, after every add()
  // has returned. Returns the number of records written.
  size_t finish();

 private:
  struct Entry {
    uint64_t offset = 0;
    uint32_t length = 0;
    uint32_t label = 0;
    uint16_t width = 0;
    uint16_t height = 0;
    uint8_t encoding = 0;
    uint8_t channels = 0;
    bool present = false;
    uint32_t crc = 0;
  };
  void write_at(uint64_t offset, const void* data, size_t size);

  std::string path_;
  std::string partial_;
  std::vector<std::string> class_names_;
  int max_side_;
  int fd_ = -1;
  bool finished_ = false;
  bool failed_ = false;  // a record's write failed: finish() must not publish the store
  std::mutex mutex_;
  uint64_t end_ = 0;  // next free data offset, guarded by mutex_
  std::vector<Entry> entries_;  // by position, guarded by mutex_
};

}  // namespace bnn::image
