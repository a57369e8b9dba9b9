#include "image/decode.h"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstring>
#include <string>

#include <jpeglib.h>
#include <jerror.h>
#include <spng.h>

#include "core/errors.h"
#include "image/ops.h"

namespace bnn::image {
namespace {

[[noreturn]] void bad_data(std::string_view name, const std::string& reason) {
  fail(ErrorKind::Io, std::string(name) + ": " + reason);
}

void check_dimensions(std::string_view name, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0) bad_data(name, "image has no pixels");
  if (width > kMaxSide || height > kMaxSide || width * height > kMaxPixels) {
    bad_data(name, "image is " + std::to_string(width) + "x" + std::to_string(height) +
                       ", larger than the decoder accepts (sides up to " + std::to_string(kMaxSide) + ", " +
                       std::to_string(kMaxPixels) + " pixels)");
  }
}

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

bool is_png(const uint8_t* data, size_t size) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return size >= 8 && std::memcmp(data, kSignature, 8) == 0;
}

// ---- JPEG -------------------------------------------------------------------------------------
// libjpeg reports fatal errors through error_exit, which must not return. It longjmps back into
// the phase function that called libjpeg. Each phase function holds only trivially destructible
// locals and calls nothing but libjpeg and plain row converters, so the longjmp skips no C++
// destructor; the session itself, with its destructor, lives in the caller's frame.

// A progressive JPEG can hold any number of scans, each a full pass over the coefficients: a
// small hostile file could cost minutes. Real encoders write about ten.
constexpr int kMaxScans = 500;
// libjpeg's own allocations (the whole-image coefficient buffer of a progressive JPEG is the big
// one) beyond this fail cleanly instead of exhausting memory.
constexpr long kMaxJpegMemory = 2L << 30;

struct JpegError {
  jpeg_error_mgr pub;  // first, so that cinfo->err can be cast back
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jump_with(j_common_ptr cinfo, const char* message) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  std::snprintf(error->message, sizeof error->message, "%s", message);
  std::longjmp(error->jump, 1);
}

void on_error_exit(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

// Warnings about corrupt but decodable data are ignored, as Pillow ignores them. Running out of
// data is not: libjpeg would pad the image with grey where Pillow raises "image file is
// truncated", and a half-grey photograph is a bad training sample.
void on_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jump_with(cinfo, "truncated JPEG data");
}

void on_output_message(j_common_ptr) {}

void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor &&
      reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxScans) {
    jump_with(cinfo, "progressive JPEG has more than 500 scans");
  }
}

struct JpegSession {
  jpeg_decompress_struct cinfo;
  JpegError error;
  jpeg_progress_mgr progress;

  JpegSession() {
    // Zeroed so that jpeg_destroy_decompress is safe even if jpeg_create_decompress failed early.
    std::memset(&cinfo, 0, sizeof cinfo);
    std::memset(&progress, 0, sizeof progress);
    cinfo.err = jpeg_std_error(&error.pub);
    error.pub.error_exit = on_error_exit;
    error.pub.emit_message = on_emit_message;
    error.pub.output_message = on_output_message;
    error.message[0] = '\0';
    progress.progress_monitor = on_progress;
  }
  ~JpegSession() { jpeg_destroy_decompress(&cinfo); }
  JpegSession(const JpegSession&) = delete;
  JpegSession& operator=(const JpegSession&) = delete;

  [[noreturn]] void raise(std::string_view name) const { bad_data(name, error.message); }
};

bool jpeg_begin(JpegSession& s, const uint8_t* data, size_t size) {
  if (setjmp(s.error.jump)) return false;
  jpeg_create_decompress(&s.cinfo);
  s.cinfo.mem->max_memory_to_use = kMaxJpegMemory;
  s.cinfo.progress = &s.progress;
  jpeg_mem_src(&s.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&s.cinfo, TRUE);
  return true;
}

bool jpeg_output_size(JpegSession& s, int scale_eighths, J_COLOR_SPACE color_space) {
  if (setjmp(s.error.jump)) return false;
  s.cinfo.scale_num = static_cast<unsigned>(scale_eighths);
  s.cinfo.scale_denom = 8;
  // Pillow's settings at full scale: the accurate integer IDCT and fancy (smooth) upsampling.
  s.cinfo.dct_method = JDCT_ISLOW;
  s.cinfo.do_fancy_upsampling = TRUE;
  s.cinfo.out_color_space = color_space;
  jpeg_calc_output_dimensions(&s.cinfo);
  return true;
}

// Starts decoding and positions it at row `first_row` of the columns [*x, *x + *width), which
// libjpeg widens to the left to an iMCU boundary.
bool jpeg_start(JpegSession& s, JDIMENSION* x, JDIMENSION* width, JDIMENSION first_row) {
  if (setjmp(s.error.jump)) return false;
  jpeg_start_decompress(&s.cinfo);
  if (*width < s.cinfo.output_width) jpeg_crop_scanline(&s.cinfo, x, width);
  if (first_row > 0 && jpeg_skip_scanlines(&s.cinfo, first_row) != first_row) {
    jump_with(reinterpret_cast<j_common_ptr>(&s.cinfo), "JPEG decoder could not skip to the crop");
  }
  return true;
}

enum class RowConvert { None, GrayToRgb, RgbToGray, CmykToRgb, CmykToGray };

// Reads `rows` rows; with a conversion, each row goes through `scratch` (width * 7 bytes).
bool jpeg_read_rows(JpegSession& s, int rows, uint8_t* out, size_t out_stride, RowConvert convert, uint8_t* scratch) {
  if (setjmp(s.error.jump)) return false;
  const size_t width = s.cinfo.output_width;
  for (int r = 0; r < rows; ++r) {
    uint8_t* dst = out + static_cast<size_t>(r) * out_stride;
    JSAMPROW row = convert == RowConvert::None ? dst : scratch;
    if (jpeg_read_scanlines(&s.cinfo, &row, 1) != 1) {
      jump_with(reinterpret_cast<j_common_ptr>(&s.cinfo), "JPEG decoder stopped before the last row");
    }
    switch (convert) {
      case RowConvert::None: break;
      case RowConvert::GrayToRgb: gray_to_rgb(scratch, dst, width); break;
      case RowConvert::RgbToGray: rgb_to_gray(scratch, dst, width); break;
      case RowConvert::CmykToRgb: inverted_cmyk_to_rgb(scratch, dst, width); break;
      case RowConvert::CmykToGray:
        inverted_cmyk_to_rgb(scratch, scratch + 4 * width, width);
        rgb_to_gray(scratch + 4 * width, dst, width);
        break;
    }
  }
  return true;
}

int jpeg_channels(const jpeg_decompress_struct& cinfo) {
  if (cinfo.num_components == 1) return 1;
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) return 4;
  return 3;
}

ImageInfo probe_jpeg(const uint8_t* data, size_t size, std::string_view name) {
  JpegSession s;
  if (!jpeg_begin(s, data, size)) s.raise(name);
  check_dimensions(name, s.cinfo.image_width, s.cinfo.image_height);
  const int channels = jpeg_channels(s.cinfo);
  if (s.cinfo.num_components != 1 && s.cinfo.num_components != 3 && s.cinfo.num_components != 4) {
    bad_data(name, "JPEG has " + std::to_string(s.cinfo.num_components) + " colour components");
  }
  return ImageInfo{Format::Jpeg, static_cast<int>(s.cinfo.image_width), static_cast<int>(s.cinfo.image_height),
                   channels};
}

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeRequest& request, std::string_view name) {
  JpegSession s;
  if (!jpeg_begin(s, data, size)) s.raise(name);
  check_dimensions(name, s.cinfo.image_width, s.cinfo.image_height);
  const int channels = request.channels;
  const Rect crop = request.crop.value_or(
      Rect{0, 0, static_cast<int>(s.cinfo.image_width), static_cast<int>(s.cinfo.image_height)});
  int scale_eighths = request.scale_eighths;
  if (scale_eighths == 0) {
    scale_eighths = request.min_width > 0 || request.min_height > 0
                        ? choose_scale_eighths(crop.width, crop.height, request.min_width, request.min_height)
                        : 8;
  }
  const int stored = jpeg_channels(s.cinfo);
  J_COLOR_SPACE color_space;
  RowConvert convert;
  if (s.cinfo.num_components == 1) {
    color_space = JCS_GRAYSCALE;
    convert = channels == 3 ? RowConvert::GrayToRgb : RowConvert::None;
  } else if (stored == 4 && s.cinfo.num_components == 4) {
    color_space = JCS_CMYK;  // libjpeg turns YCCK into CMYK
    convert = channels == 3 ? RowConvert::CmykToRgb : RowConvert::CmykToGray;
  } else if (s.cinfo.num_components == 3 && stored == 3) {
    color_space = JCS_RGB;
    convert = channels == 3 ? RowConvert::None : RowConvert::RgbToGray;
  } else {
    bad_data(name, "JPEG has an unsupported colour layout (" + std::to_string(s.cinfo.num_components) +
                       " components)");
  }
  if (crop.x + crop.width > static_cast<int64_t>(s.cinfo.image_width) ||
      crop.y + crop.height > static_cast<int64_t>(s.cinfo.image_height)) {
    fail(ErrorKind::InvalidArgument, std::string(name) + ": crop lies outside the image");
  }
  if (!jpeg_output_size(s, scale_eighths, color_space)) s.raise(name);

  // The crop in scaled pixels. Columns get a margin of two pixels each side because the decoder
  // treats the edges of a cropped row as image edges when upsampling chroma, which would change
  // the crop's first and last columns.
  const double f = scale_eighths / 8.0;
  const Box scaled{crop.x * f, crop.y * f, (crop.x + crop.width) * f, (crop.y + crop.height) * f};
  const int out_w = static_cast<int>(s.cinfo.output_width), out_h = static_cast<int>(s.cinfo.output_height);
  constexpr int kMargin = 2;
  const int x_begin = std::max(0, static_cast<int>(std::floor(scaled.x0)) - kMargin);
  const int x_end = std::min(out_w, static_cast<int>(std::ceil(scaled.x1)) + kMargin);
  const int y_begin = std::max(0, static_cast<int>(std::floor(scaled.y0)));
  const int y_end = std::max(y_begin + 1, std::min(out_h, static_cast<int>(std::ceil(scaled.y1))));
  JDIMENSION x = static_cast<JDIMENSION>(x_begin), width = static_cast<JDIMENSION>(x_end - x_begin);
  if (!jpeg_start(s, &x, &width, static_cast<JDIMENSION>(y_begin))) s.raise(name);
  if (s.cinfo.output_width != width || static_cast<int>(x) > x_begin || x + width < static_cast<JDIMENSION>(x_end)) {
    bad_data(name, "JPEG decoder returned an unexpected region");
  }

  Decoded out;
  out.scale_eighths = scale_eighths;
  out.x = static_cast<int>(x);
  out.y = y_begin;
  out.crop = Box{scaled.x0 - out.x, scaled.y0 - out.y, scaled.x1 - out.x, scaled.y1 - out.y};
  out.image.width = static_cast<int>(width);
  out.image.height = y_end - y_begin;
  out.image.channels = channels;
  out.image.pixels.resize(static_cast<size_t>(out.image.width) * out.image.height * channels);
  std::vector<uint8_t> scratch(convert == RowConvert::None ? 0 : static_cast<size_t>(width) * 7);
  if (!jpeg_read_rows(s, out.image.height, out.image.pixels.data(), static_cast<size_t>(width) * channels, convert,
                      scratch.data())) {
    s.raise(name);
  }
  return out;
}

// ---- PNG --------------------------------------------------------------------------------------

// Text and other ancillary chunks are held in memory by libspng; cap them.
constexpr size_t kMaxPngChunk = size_t{64} << 20;

struct SpngContext {
  spng_ctx* ctx = spng_ctx_new(0);
  ~SpngContext() { spng_ctx_free(ctx); }
  SpngContext() = default;
  SpngContext(const SpngContext&) = delete;
  SpngContext& operator=(const SpngContext&) = delete;
};

void spng_check(int rc, std::string_view name) {
  if (rc != 0) bad_data(name, std::string("PNG: ") + spng_strerror(rc));
}

int png_channels(uint8_t color_type) {
  switch (color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: return 1;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: return 2;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: return 4;
    default: return 3;
  }
}

spng_ihdr png_header(SpngContext& png, const uint8_t* data, size_t size, std::string_view name) {
  if (png.ctx == nullptr) fail(ErrorKind::Io, std::string(name) + ": out of memory creating a PNG decoder");
  spng_check(spng_set_image_limits(png.ctx, kMaxSide, kMaxSide), name);
  spng_check(spng_set_chunk_limits(png.ctx, kMaxPngChunk, kMaxPngChunk), name);
  spng_check(spng_set_png_buffer(png.ctx, data, size), name);
  spng_ihdr ihdr{};
  spng_check(spng_get_ihdr(png.ctx, &ihdr), name);
  check_dimensions(name, ihdr.width, ihdr.height);
  return ihdr;
}

Decoded decode_png(const uint8_t* data, size_t size, const std::optional<Rect>& crop, int channels,
                   std::string_view name) {
  SpngContext png;
  const spng_ihdr ihdr = png_header(png, data, size, name);
  const size_t pixels = static_cast<size_t>(ihdr.width) * ihdr.height;
  const bool gray = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE || ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
  // Grey with alpha or 16 bits comes out as stored (big-endian), and its first byte per pixel is
  // the grey high byte: PIL drops alpha and keeps the high byte (for 16-bit grey without alpha
  // PIL clamps to 255 instead, which whitens the photograph; we keep the high byte, deliberately).
  const bool raw_gray = gray && (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA || ihdr.bit_depth == 16);
  const int fmt = !gray ? SPNG_FMT_RGB8 : raw_gray ? SPNG_FMT_RAW : SPNG_FMT_G8;
  size_t bytes = 0;
  spng_check(spng_decoded_image_size(png.ctx, fmt, &bytes), name);
  const size_t step = raw_gray ? (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ? 2 : 1) * (ihdr.bit_depth / 8)
                               : (gray ? 1 : 3);
  if (bytes != pixels * step) bad_data(name, "PNG decoded size is inconsistent with its header");

  Decoded out;
  out.image.width = static_cast<int>(ihdr.width);
  out.image.height = static_cast<int>(ihdr.height);
  out.image.channels = channels;
  const int decoded_channels = gray ? 1 : 3;
  std::vector<uint8_t> buffer;
  const bool direct = !raw_gray && decoded_channels == channels;
  if (direct) {
    out.image.pixels.resize(bytes);
    spng_check(spng_decode_image(png.ctx, out.image.pixels.data(), bytes, fmt, 0), name);
  } else {
    buffer.resize(bytes);
    spng_check(spng_decode_image(png.ctx, buffer.data(), bytes, fmt, 0), name);
    out.image.pixels.resize(pixels * channels);
    if (raw_gray) {
      // Keep the grey (high) byte of each pixel in place, then widen if RGB was asked for.
      for (size_t i = 0; i < pixels; ++i) buffer[i] = buffer[i * step];
    }
    if (decoded_channels == 1 && channels == 3) gray_to_rgb(buffer.data(), out.image.pixels.data(), pixels);
    else if (decoded_channels == 3 && channels == 1) rgb_to_gray(buffer.data(), out.image.pixels.data(), pixels);
    else std::memcpy(out.image.pixels.data(), buffer.data(), pixels);
  }
  const Rect c = crop.value_or(Rect{0, 0, out.image.width, out.image.height});
  if (c.x + c.width > out.image.width || c.y + c.height > out.image.height) {
    fail(ErrorKind::InvalidArgument, std::string(name) + ": crop lies outside the image");
  }
  out.crop = Box{static_cast<double>(c.x), static_cast<double>(c.y), static_cast<double>(c.x + c.width),
                 static_cast<double>(c.y + c.height)};
  return out;
}

}  // namespace

ImageInfo probe(const uint8_t* data, size_t size, std::string_view name) {
  if (is_jpeg(data, size)) return probe_jpeg(data, size, name);
  if (is_png(data, size)) {
    SpngContext png;
    const spng_ihdr ihdr = png_header(png, data, size, name);
    return ImageInfo{Format::Png, static_cast<int>(ihdr.width), static_cast<int>(ihdr.height),
                     png_channels(ihdr.color_type)};
  }
  bad_data(name, "not a JPEG or PNG image");
}

int choose_scale_eighths(int crop_width, int crop_height, int min_width, int min_height) {
  for (int m = 1; m < 8; m *= 2) {
    // crop * m/8 >= min, in integers.
    if (int64_t{crop_width} * m >= int64_t{min_width} * 8 && int64_t{crop_height} * m >= int64_t{min_height} * 8) {
      return m;
    }
  }
  return 8;
}

Decoded decode(const uint8_t* data, size_t size, const DecodeRequest& request, std::string_view name) {
  if (request.channels != 1 && request.channels != 3) {
    fail(ErrorKind::InvalidArgument, std::string(name) + ": channels must be 1 or 3");
  }
  const int s = request.scale_eighths;
  if (s != 0 && s != 1 && s != 2 && s != 4 && s != 8) {
    fail(ErrorKind::InvalidArgument, std::string(name) + ": scale_eighths must be 0, 1, 2, 4 or 8");
  }
  if (request.crop && (request.crop->x < 0 || request.crop->y < 0 || request.crop->width <= 0 ||
                       request.crop->height <= 0)) {
    fail(ErrorKind::InvalidArgument, std::string(name) + ": crop must be a non-empty rectangle inside the image");
  }
  if (is_png(data, size)) return decode_png(data, size, request.crop, request.channels, name);
  if (!is_jpeg(data, size)) bad_data(name, "not a JPEG or PNG image");
  return decode_jpeg(data, size, request, name);
}

}  // namespace bnn::image
