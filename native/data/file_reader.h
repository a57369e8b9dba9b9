#pragma once
// Reads a data file front to back, raw or gzip-compressed, for readers that trust nothing in it.
//
// Compression is detected from the first two bytes (1f 8b), not the name: copies of MNIST named
// .gz are often already decompressed (browsers do that), and the reverse happens too. Every read
// reports how many bytes really came, so a reader can say "header says X but only Y follow"; a
// gzip stream is inflated only as far as the reader asks (plus a few bytes to prove the end), so a
// decompression bomb costs no more memory than the header announced.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bnn::data {

class FileReader {
 public:
  // Opens `path`; fails (ErrorKind::Io) when it is missing, not a regular file or unreadable.
  explicit FileReader(std::string path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& path() const { return path_; }
  bool gzipped() const { return gzipped_; }
  // Size of the file on disk.
  uint64_t file_size() const { return file_size_; }

  // Reads up to n bytes; returns fewer only at the end of the data. Fails on I/O and gzip errors.
  size_t read(uint8_t* dst, size_t n);

  // Bytes still to come, when knowable without reading them (raw files only).
  std::optional<uint64_t> known_remaining() const;

  // The most bytes the rest of the data could decompress to: the file size for raw files, and the
  // deflate format's best ratio (1032:1) for gzip. Lets a reader reject an impossible header
  // before allocating what it announces.
  uint64_t max_remaining() const;

  // Fails unless the data ends here: no trailing bytes, and for gzip a complete stream whose CRC
  // and length check out. `what` describes the expected content for the message.
  void expect_end(const std::string& what);

 private:
  struct Inflater;

  size_t read_raw(uint8_t* dst, size_t n);
  size_t read_gzip(uint8_t* dst, size_t n);
  bool refill();
  [[noreturn]] void fail_io(const std::string& what) const;

  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t file_size_ = 0;
  uint64_t consumed_ = 0;  // bytes of the file read so far (compressed bytes for gzip)
  bool gzipped_ = false;
  std::unique_ptr<Inflater> inflater_;
  std::vector<uint8_t> in_buffer_;
};

}  // namespace bnn::data
