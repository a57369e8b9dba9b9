#pragma once
// JPEG (libjpeg-turbo) and PNG (libspng) decoding to interleaved uint8 RGB or grey, giving the
// bytes PIL gives for Image.open(f).convert("RGB") / .convert("L"): full-scale JPEGs use the
// default ISLOW IDCT with fancy upsampling, as Pillow does.
//
// A JPEG can also be decoded only as far as a transform needs it: DCT-domain scaling (1/2, 1/4,
// 1/8) when the crop will be shrunk anyway, and only the crop's rows and (iMCU-aligned) columns.
// PNG has no such shortcuts; it is decoded whole and the crop is handed back the same way.
//
// Bad data throws bnn::Error(ErrorKind::Io, "<name>: <reason>"); bad requests throw
// InvalidArgument. Every function is thread-safe and keeps no state between calls.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "image/image.h"

namespace bnn::image {

enum class Format { Jpeg, Png };

struct ImageInfo {
  Format format = Format::Jpeg;
  int width = 0;
  int height = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey + alpha, 3 colour, 4 RGBA or CMYK/YCCK
};

// Reads only the header. `name` (the file's path, or "image") prefixes error messages.
ImageInfo probe(const uint8_t* data, size_t size, std::string_view name = "image");

struct DecodeRequest {
  int channels = 3;         // 3: RGB; 1: grey as PIL's convert("L")
  std::optional<Rect> crop; // in full-image pixels; absent: the whole image. Must lie inside it.
  // The crop's size after decoding must stay at least this large. A JPEG is decoded at the
  // smallest scale M/8 (M in 1, 2, 4, 8) that keeps it so; 0 x 0 means full scale.
  int min_width = 0;
  int min_height = 0;
  // Forces the scale M/8 (1, 2, 4 or 8) instead; 0 lets min_width / min_height decide.
  int scale_eighths = 0;
};

struct Decoded {
  Image image;           // a region of the (scaled) image that covers the crop, maybe wider
  int scale_eighths = 8; // the image was decoded at scale_eighths / 8 of full size
  int x = 0;             // where image's first pixel lies in the whole scaled image
  int y = 0;
  Box crop;              // the requested crop in image's own pixel coordinates (scaled, shifted)
};

Decoded decode(const uint8_t* data, size_t size, const DecodeRequest& request, std::string_view name = "image");

// The scale M/8 decode() picks: the smallest M in 1, 2, 4, 8 with crop * M/8 >= min in both axes.
int choose_scale_eighths(int crop_width, int crop_height, int min_width, int min_height);

}  // namespace bnn::image
