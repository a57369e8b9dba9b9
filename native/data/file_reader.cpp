#include "data/file_reader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>
#include <system_error>

#include <zlib.h>

#include "core/errors.h"

namespace bnn::data {

namespace {

constexpr size_t kInputChunk = 256 * 1024;
// Deflate cannot expand data by more than about 1032:1 (a 258-byte match coded in 2 bits).
constexpr uint64_t kMaxDeflateRatio = 1032;

}  // namespace

struct FileReader::Inflater {
  z_stream zs{};
  bool member_ended = false;

  Inflater() {
    // 16 + MAX_WBITS: gzip wrapper only, with its CRC-32 and length checked at the end.
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
  }
  ~Inflater() { inflateEnd(&zs); }
};

FileReader::FileReader(std::string path) : path_(std::move(path)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path_, ec);
  if (!fs::exists(status)) fail(ErrorKind::Io, path_ + ": no such file");
  if (fs::is_directory(status)) fail(ErrorKind::Io, path_ + ": is a folder, not a file");
  if (!fs::is_regular_file(status)) fail(ErrorKind::Io, path_ + ": is not a regular file");
  file_size_ = fs::file_size(path_, ec);
  if (ec) fail(ErrorKind::Io, path_ + ": cannot read its size: " + ec.message());
  file_ = std::fopen(path_.c_str(), "rb");
  if (file_ == nullptr) fail_io("cannot open");

  uint8_t magic[2] = {0, 0};
  const size_t got = std::fread(magic, 1, 2, file_);
  if (std::ferror(file_)) fail_io("read error");
  gzipped_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (std::fseek(file_, 0, SEEK_SET) != 0) fail_io("cannot seek");
  if (gzipped_) {
    inflater_ = std::make_unique<Inflater>();
    in_buffer_.resize(kInputChunk);
  }
}

FileReader::~FileReader() {
  if (file_ != nullptr) std::fclose(file_);
}

void FileReader::fail_io(const std::string& what) const {
  fail(ErrorKind::Io, path_ + ": " + what + ": " + std::strerror(errno));
}

size_t FileReader::read(uint8_t* dst, size_t n) { return gzipped_ ? read_gzip(dst, n) : read_raw(dst, n); }

size_t FileReader::read_raw(uint8_t* dst, size_t n) {
  const size_t got = n == 0 ? 0 : std::fread(dst, 1, n, file_);
  if (got < n && std::ferror(file_)) fail_io("read error");
  consumed_ += got;
  return got;
}

// Moves unread input to the front of the buffer and tops it up from the file. False at end of file.
bool FileReader::refill() {
  z_stream& zs = inflater_->zs;
  const size_t keep = zs.avail_in;
  if (keep > 0 && zs.next_in != in_buffer_.data()) std::memmove(in_buffer_.data(), zs.next_in, keep);
  const size_t got = std::fread(in_buffer_.data() + keep, 1, in_buffer_.size() - keep, file_);
  if (got == 0 && std::ferror(file_)) fail_io("read error");
  consumed_ += got;
  zs.next_in = in_buffer_.data();
  zs.avail_in = static_cast<uInt>(keep + got);
  return got > 0;
}

size_t FileReader::read_gzip(uint8_t* dst, size_t n) {
  z_stream& zs = inflater_->zs;
  size_t produced = 0;
  while (produced < n) {
    if (inflater_->member_ended) {
      // A gzip file may hold several members back to back; anything else after one is garbage.
      while (zs.avail_in < 2 && refill()) {
      }
      if (zs.avail_in == 0) break;  // the true end of the data
      if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
        fail(ErrorKind::Io, path_ + ": corrupt gzip file: " +
                                std::to_string(file_size_ - consumed_ + zs.avail_in) +
                                " bytes of trailing garbage after the compressed data");
      }
      if (inflateReset(&zs) != Z_OK) fail(ErrorKind::Io, path_ + ": corrupt gzip file: cannot restart the inflater");
      inflater_->member_ended = false;
    }
    if (zs.avail_in == 0 && !refill()) {
      fail(ErrorKind::Io, path_ + ": truncated gzip file: the file ends inside the compressed data (after " +
                              std::to_string(produced) + " more bytes decompressed)");
    }
    // zlib counts in uInt; larger requests go in slices.
    const size_t want = std::min<size_t>(n - produced, 1u << 30);
    zs.next_out = dst + produced;
    zs.avail_out = static_cast<uInt>(want);
    const uInt in_before = zs.avail_in;
    const int r = inflate(&zs, Z_NO_FLUSH);
    const size_t out = want - zs.avail_out;
    produced += out;
    switch (r) {
      case Z_STREAM_END: inflater_->member_ended = true; break;
      case Z_OK: break;
      case Z_BUF_ERROR:
        // No progress was possible: fine if the input simply ran dry (refilled next round).
        if (zs.avail_in != 0 || in_before == 0) {
          fail(ErrorKind::Io, path_ + ": corrupt gzip file: the inflater made no progress");
        }
        break;
      case Z_MEM_ERROR: throw std::bad_alloc();
      case Z_NEED_DICT:
      case Z_DATA_ERROR:
      default:
        fail(ErrorKind::Io, path_ + ": corrupt gzip data (" + std::string(zs.msg ? zs.msg : "invalid stream") + ")");
    }
  }
  return produced;
}

std::optional<uint64_t> FileReader::known_remaining() const {
  if (gzipped_) return std::nullopt;
  return file_size_ >= consumed_ ? file_size_ - consumed_ : 0;
}

uint64_t FileReader::max_remaining() const {
  if (!gzipped_) return file_size_ >= consumed_ ? file_size_ - consumed_ : 0;
  const uint64_t compressed = (file_size_ >= consumed_ ? file_size_ - consumed_ : 0) + inflater_->zs.avail_in;
  return compressed * kMaxDeflateRatio + 1024;
}

void FileReader::expect_end(const std::string& what) {
  if (!gzipped_) {
    // Read rather than trust the size from stat: the file may have changed since.
    uint8_t probe[64];
    const size_t extra = read_raw(probe, sizeof probe);
    if (extra > 0) {
      const uint64_t remaining = file_size_ > consumed_ ? file_size_ - consumed_ : 0;
      fail(ErrorKind::Io, path_ + ": " + std::to_string(remaining + extra) + " unexpected bytes follow the " + what);
    }
    return;
  }
  // Inflating a little further proves the stream ends here and makes zlib check CRC and length.
  uint8_t probe[64];
  const size_t extra = read_gzip(probe, sizeof probe);
  if (extra > 0) {
    fail(ErrorKind::Io, path_ + ": decompresses to more than the " + what + " (at least " + std::to_string(extra) +
                            " unexpected bytes follow)");
  }
}

}  // namespace bnn::data
