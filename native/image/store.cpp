#include "image/store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/errors.h"
#include "image/decode.h"
#include "image/ops.h"
#include "image/resize.h"

namespace bnn::image {
namespace {

constexpr char kMagic[8] = {'B', 'N', 'N', 'I', 'M', 'G', 'S', 'T'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 64;
constexpr size_t kEntrySize = 32;
constexpr size_t kRecordAlignment = 16;
// Far beyond ImageNet-21k's classes; bounds the class table a forged header can make us parse.
constexpr uint64_t kMaxClasses = uint64_t{1} << 24;
constexpr size_t kMaxClassName = 4096;

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t get32(const uint8_t* p) { return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24; }
uint64_t get64(const uint8_t* p) { return uint64_t{get32(p)} | uint64_t{get32(p + 4)} << 32; }
void put16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v), p[1] = static_cast<uint8_t>(v >> 8); }
void put32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i)); }
void put64(uint8_t* p, uint64_t v) { put32(p, static_cast<uint32_t>(v)), put32(p + 4, static_cast<uint32_t>(v >> 32)); }

// zlib's crc32 takes a uInt length; feed larger runs in pieces.
uint32_t crc_of(const uint8_t* data, size_t size, uint32_t crc = 0) {
  uLong c = crc;
  while (size > 0) {
    const uInt n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    c = crc32(c, data, n);
    data += n;
    size -= n;
  }
  return static_cast<uint32_t>(c);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& reason) {
  fail(ErrorKind::Io, path + ": not a valid image store: " + reason);
}

std::string system_error(const std::string& path, const std::string& what) {
  return path + ": " + what + ": " + std::strerror(errno);
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

// ---- reading ----------------------------------------------------------------------------------

std::shared_ptr<const Store> Store::open(const std::string& path) {
  std::shared_ptr<Store> store(new Store());
  store->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::Io, system_error(path, "cannot open"));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const std::string message = system_error(path, "cannot stat");
    ::close(fd);
    fail(ErrorKind::Io, message);
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < kHeaderSize) {
    ::close(fd);
    corrupt(path, "file is shorter than the header");
  }
  void* map = mmap(nullptr, file_size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    errno = map_errno;
    fail(ErrorKind::Io, system_error(path, "cannot map"));
  }
  store->map_ = static_cast<const uint8_t*>(map);
  store->map_size_ = file_size;
  // Reads in an epoch are random; read-ahead would only waste page cache.
  madvise(map, file_size, MADV_RANDOM);

  const uint8_t* h = store->map_;
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) corrupt(path, "bad magic");
  if (get32(h + 8) != kVersion) corrupt(path, "format version " + std::to_string(get32(h + 8)) + " is not 1");
  if (get32(h + 12) != kHeaderSize) corrupt(path, "bad header size");
  if (get32(h + 60) != crc_of(h, 60)) corrupt(path, "header checksum mismatch");
  const uint64_t count = get64(h + 16);
  const uint64_t classes = get32(h + 24);
  const uint64_t class_offset = get64(h + 32);
  const uint64_t index_offset = get64(h + 40);
  if (get64(h + 48) != file_size) {
    corrupt(path, "file is " + std::to_string(file_size) + " bytes, header says " + std::to_string(get64(h + 48)));
  }
  if (classes == 0 || classes > kMaxClasses) corrupt(path, "bad class count");
  if (class_offset < kHeaderSize || class_offset > index_offset || index_offset % 8 != 0) {
    corrupt(path, "class table and index are out of order");
  }
  // index_offset <= file_size, so the division cannot overflow and bounds count.
  if (index_offset > file_size || count > (file_size - index_offset) / kEntrySize ||
      index_offset + count * kEntrySize != file_size) {
    corrupt(path, "index does not fit the file");
  }
  if (get32(h + 56) != crc_of(h + class_offset, file_size - class_offset)) {
    corrupt(path, "class table or index checksum mismatch");
  }

  const uint8_t* p = h + class_offset;
  const uint8_t* class_end = h + index_offset;
  uint64_t total = 0;
  for (uint64_t k = 0; k < classes; ++k) {
    if (class_end - p < 12) corrupt(path, "class table is truncated");
    const uint64_t n = get64(p);
    const uint32_t length = get32(p + 8);
    p += 12;
    if (length > kMaxClassName || static_cast<uint64_t>(class_end - p) < length) corrupt(path, "bad class name");
    store->class_names_.emplace_back(reinterpret_cast<const char*>(p), length);
    store->class_counts_.push_back(n);
    p += length;
    if (n > count - std::min(total, count)) corrupt(path, "class counts exceed the record count");
    total += n;
  }
  if (total != count) corrupt(path, "class counts do not add up to the record count");

  store->count_ = static_cast<size_t>(count);
  store->index_ = h + index_offset;
  store->max_side_ = static_cast<int>(std::min<uint32_t>(get32(h + 28), kMaxSide));
  std::vector<uint64_t> seen(classes, 0);
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = store->index_ + i * kEntrySize;
    const uint64_t offset = get64(e);
    const uint64_t length = get32(e + 8);
    const uint32_t label = get32(e + 12);
    const int width = get16(e + 16), height = get16(e + 18);
    const uint8_t encoding = e[20], channels = e[21];
    const std::string where = "record " + std::to_string(i) + " ";
    if (offset < kHeaderSize || offset > class_offset || length > class_offset - offset) {
      corrupt(path, where + "lies outside the data area");
    }
    if (label >= classes) corrupt(path, where + "has label " + std::to_string(label) + " out of range");
    if (encoding > static_cast<uint8_t>(Encoding::Raw) || (channels != 1 && channels != 3) || width == 0 ||
        height == 0 || width > kMaxSide || height > kMaxSide) {
      corrupt(path, where + "has bad metadata");
    }
    if (encoding == static_cast<uint8_t>(Encoding::Raw) &&
        length != static_cast<uint64_t>(width) * height * channels) {
      corrupt(path, where + "raw size does not match its dimensions");
    }
    ++seen[label];
  }
  for (uint64_t k = 0; k < classes; ++k) {
    if (seen[k] != store->class_counts_[k]) corrupt(path, "class " + std::to_string(k) + " count does not match the index");
  }
  return store;
}

Store::~Store() {
  if (map_ != nullptr) munmap(const_cast<uint8_t*>(map_), map_size_);
}

const uint8_t* Store::entry(size_t i) const {
  if (i >= count_) {
    fail(ErrorKind::InvalidArgument, path_ + ": record " + std::to_string(i) + " is out of range (" +
                                         std::to_string(count_) + " records)");
  }
  return index_ + i * kEntrySize;
}

uint32_t Store::label(size_t i) const { return get32(entry(i) + 12); }

StoreRecord Store::record(size_t i) const {
  const uint8_t* e = entry(i);
  StoreRecord r;
  r.data = map_ + get64(e);
  r.size = get32(e + 8);
  r.label = get32(e + 12);
  r.width = get16(e + 16);
  r.height = get16(e + 18);
  r.encoding = static_cast<Encoding>(e[20]);
  r.channels = e[21];
  if (crc_of(r.data, r.size) != get32(e + 24)) {
    fail(ErrorKind::Io, path_ + ": record " + std::to_string(i) + " is corrupt (checksum mismatch)");
  }
  return r;
}

void Store::release(const StoreRecord& r) const {
  // The record's whole pages only: a partial page at either end may hold a neighbour that another
  // thread is reading (which would merely fault it back in from the page cache, but needlessly).
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(r.data) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(r.data) + r.size) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void render_record(const Store& store, size_t i, const TransformSpec& spec, uint64_t seed, int64_t epoch,
                   int64_t sample, uint8_t* dst) {
  const StoreRecord r = store.record(i);
  if (r.encoding == Encoding::Raw) {
    const View view{r.data, r.width, r.height, r.channels, static_cast<size_t>(r.width) * r.channels};
    render_decoded(view, spec, seed, epoch, sample, dst);
  } else {
    render(r.data, r.size, spec, seed, epoch, sample, dst, store.path() + " record " + std::to_string(i));
  }
  store.release(r);
}

// ---- writing ----------------------------------------------------------------------------------

namespace {

std::vector<uint8_t> encode_jpeg(const Image& image, int quality, std::string_view name) {
  tjhandle handle = tjInitCompress();
  if (handle == nullptr) fail(ErrorKind::Io, std::string(name) + ": cannot create a JPEG encoder");
  unsigned char* jpeg = nullptr;
  unsigned long jpeg_size = 0;
  const int rc = tjCompress2(handle, image.pixels.data(), image.width, 0, image.height,
                             image.channels == 1 ? TJPF_GRAY : TJPF_RGB, &jpeg, &jpeg_size,
                             image.channels == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, 0);
  std::string error = rc != 0 ? tjGetErrorStr2(handle) : "";
  tjDestroy(handle);
  if (rc != 0) {
    tjFree(jpeg);
    fail(ErrorKind::Io, std::string(name) + ": JPEG encoding failed: " + error);
  }
  std::vector<uint8_t> out(jpeg, jpeg + jpeg_size);
  tjFree(jpeg);
  return out;
}

}  // namespace

PreparedRecord prepare_record(const uint8_t* data, size_t size, const PrepareOptions& options, std::string_view name) {
  if (options.max_side < 1 || options.raw_max_side < 0 || options.quality < 1 || options.quality > 100) {
    fail(ErrorKind::InvalidArgument, "prepare: max_side >= 1, raw_max_side >= 0 and quality in [1, 100] are required");
  }
  const ImageInfo info = probe(data, size, name);
  const int channels = info.channels <= 2 ? 1 : 3;
  const int shorter = std::min(info.width, info.height), longer = std::max(info.width, info.height);
  PreparedRecord out;
  out.channels = channels;
  const bool small = info.width <= options.raw_max_side && info.height <= options.raw_max_side;
  if (!small && info.format == Format::Jpeg && shorter <= options.max_side) {
    // Re-encoding would only lose quality; this also checks that the file decodes.
    DecodeRequest request;
    request.channels = channels;
    decode(data, size, request, name);
    out.bytes.assign(data, data + size);
    out.encoding = Encoding::Jpeg;
    out.width = info.width;
    out.height = info.height;
    return out;
  }
  DecodeRequest request;
  request.channels = channels;
  Image image = decode(data, size, request, name).image;
  if (shorter > options.max_side) {
    // torchvision's Resize(max_side) rounding for the longer side.
    const int new_long = static_cast<int>(static_cast<double>(int64_t{options.max_side} * longer) / shorter);
    const int w = info.width <= info.height ? options.max_side : new_long;
    const int h = info.width <= info.height ? new_long : options.max_side;
    Image shrunk;
    shrunk.width = w;
    shrunk.height = h;
    shrunk.channels = channels;
    shrunk.pixels.resize(static_cast<size_t>(w) * h * channels);
    resize(image.view(), w, h, shrunk.pixels.data());
    image = std::move(shrunk);
  }
  out.width = image.width;
  out.height = image.height;
  if (image.width <= options.raw_max_side && image.height <= options.raw_max_side) {
    out.encoding = Encoding::Raw;
    out.bytes = std::move(image.pixels);
  } else {
    out.encoding = Encoding::Jpeg;
    out.bytes = encode_jpeg(image, options.quality, name);
  }
  return out;
}

StoreWriter::StoreWriter(std::string path, std::vector<std::string> class_names, int max_side)
    : path_(std::move(path)), class_names_(std::move(class_names)), max_side_(max_side) {
  if (class_names_.empty() || class_names_.size() > kMaxClasses) {
    fail(ErrorKind::InvalidArgument, path_ + ": a store needs between 1 and 2^24 classes");
  }
  for (const auto& n : class_names_) {
    if (n.size() > kMaxClassName) fail(ErrorKind::InvalidArgument, path_ + ": class name longer than 4096 bytes");
  }
  if (max_side < 1) fail(ErrorKind::InvalidArgument, path_ + ": max side must be >= 1");
  partial_ = path_ + ".partial-" + std::to_string(::getpid());
  fd_ = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(ErrorKind::Io, system_error(partial_, "cannot create"));
  end_ = kHeaderSize;
}

StoreWriter::~StoreWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(partial_.c_str());
}

void StoreWriter::write_at(uint64_t offset, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(ErrorKind::Io, system_error(partial_, "write failed"));
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
}

void StoreWriter::add(uint64_t position, const PreparedRecord& record, uint32_t label) {
  if (label >= class_names_.size()) {
    fail(ErrorKind::InvalidArgument, path_ + ": label " + std::to_string(label) + " is out of range");
  }
  if (record.bytes.empty() || record.bytes.size() > std::numeric_limits<uint32_t>::max() || record.width < 1 ||
      record.height < 1 || record.width > kMaxSide || record.height > kMaxSide ||
      (record.channels != 1 && record.channels != 3) ||
      (record.encoding == Encoding::Raw &&
       record.bytes.size() != static_cast<size_t>(record.width) * record.height * record.channels)) {
    fail(ErrorKind::InvalidArgument, path_ + ": record " + std::to_string(position) + " is malformed");
  }
  if (position > (uint64_t{1} << 40)) fail(ErrorKind::InvalidArgument, path_ + ": record position is too large");
  Entry e;
  e.length = static_cast<uint32_t>(record.bytes.size());
  e.label = label;
  e.width = static_cast<uint16_t>(record.width);
  e.height = static_cast<uint16_t>(record.height);
  e.encoding = static_cast<uint8_t>(record.encoding);
  e.channels = static_cast<uint8_t>(record.channels);
  e.crc = crc_of(record.bytes.data(), record.bytes.size());
  e.present = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) fail(ErrorKind::InvalidArgument, path_ + ": add() after finish()");
    if (position < entries_.size() && entries_[position].present) {
      fail(ErrorKind::InvalidArgument, path_ + ": record " + std::to_string(position) + " was added twice");
    }
    e.offset = end_;
    end_ = align_up(end_ + e.length, kRecordAlignment);
    if (position >= entries_.size()) entries_.resize(position + 1);
    entries_[position] = e;
  }
  // The range is reserved, so the write itself needs no lock.
  try {
    write_at(e.offset, record.bytes.data(), record.bytes.size());
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_ = true;
    throw;
  }
}

size_t StoreWriter::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) fail(ErrorKind::InvalidArgument, path_ + ": finish() called twice");
  if (failed_) fail(ErrorKind::Io, partial_ + ": a record failed to write; the store is incomplete");
  std::vector<uint64_t> counts(class_names_.size(), 0);
  size_t n = 0;
  for (const Entry& e : entries_) {
    if (e.present) ++counts[e.label], ++n;
  }
  std::vector<uint8_t> tail;
  for (size_t k = 0; k < class_names_.size(); ++k) {
    uint8_t fixed[12];
    put64(fixed, counts[k]);
    put32(fixed + 8, static_cast<uint32_t>(class_names_[k].size()));
    tail.insert(tail.end(), fixed, fixed + 12);
    tail.insert(tail.end(), class_names_[k].begin(), class_names_[k].end());
  }
  const uint64_t class_offset = end_;
  // Padding between the class table and the 8-aligned index belongs to the checksummed run.
  tail.resize(align_up(class_offset + tail.size(), 8) - class_offset, 0);
  const uint64_t index_offset = class_offset + tail.size();
  for (const Entry& e : entries_) {
    if (!e.present) continue;
    uint8_t b[kEntrySize] = {};
    put64(b, e.offset);
    put32(b + 8, e.length);
    put32(b + 12, e.label);
    put16(b + 16, e.width);
    put16(b + 18, e.height);
    b[20] = e.encoding;
    b[21] = e.channels;
    put32(b + 24, e.crc);
    tail.insert(tail.end(), b, b + kEntrySize);
  }
  const uint64_t file_size = class_offset + tail.size();
  uint8_t header[kHeaderSize] = {};
  std::memcpy(header, kMagic, sizeof kMagic);
  put32(header + 8, kVersion);
  put32(header + 12, kHeaderSize);
  put64(header + 16, n);
  put32(header + 24, static_cast<uint32_t>(class_names_.size()));
  put32(header + 28, static_cast<uint32_t>(max_side_));
  put64(header + 32, class_offset);
  put64(header + 40, index_offset);
  put64(header + 48, file_size);
  put32(header + 56, crc_of(tail.data(), tail.size()));
  put32(header + 60, crc_of(header, 60));
  write_at(class_offset, tail.data(), tail.size());
  write_at(0, header, kHeaderSize);
  if (::ftruncate(fd_, static_cast<off_t>(file_size)) != 0) fail(ErrorKind::Io, system_error(partial_, "truncate failed"));
  if (::fsync(fd_) != 0) fail(ErrorKind::Io, system_error(partial_, "fsync failed"));
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail(ErrorKind::Io, system_error(partial_, "close failed"));
  }
  fd_ = -1;
  if (::rename(partial_.c_str(), path_.c_str()) != 0) fail(ErrorKind::Io, system_error(path_, "rename failed"));
  finished_ = true;
  // The rename is durable only once the directory is synced.
  const auto slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return n;
}

}  // namespace bnn::image
