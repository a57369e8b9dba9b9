#include "data/augment.h"

#include <algorithm>

#include "data/random.h"
#include "image/ops.h"

namespace bnn::data {

SampleAugment draw_augment(const AugmentOptions& options, uint64_t seed, int64_t epoch, int64_t sample) {
  SampleAugment a;
  if (options.rotation > 0) {
    // A stream of its own, so that turning rotation on leaves every crop and flip as it was.
    Rng rng(hash_words({seed, static_cast<uint64_t>(Stream::Augment), static_cast<uint64_t>(epoch), static_cast<uint64_t>(sample), 1}));
    const double unit = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
    a.angle = (2 * unit - 1) * options.rotation;
  }
  if (options.crop_padding <= 0 && !options.hflip) return a;
  Rng rng(hash_words({seed, static_cast<uint64_t>(Stream::Augment), static_cast<uint64_t>(epoch), static_cast<uint64_t>(sample)}));
  // Always three draws in a fixed order, so switching one augmentation off leaves the others' draws alone.
  const auto span = static_cast<uint64_t>(2 * std::max<int64_t>(options.crop_padding, 0) + 1);
  const auto dy = static_cast<int64_t>(rng.below(span));
  const auto dx = static_cast<int64_t>(rng.below(span));
  const bool flip = (rng.next() >> 63) != 0;
  if (options.crop_padding > 0) {
    a.dy = dy - options.crop_padding;
    a.dx = dx - options.crop_padding;
  }
  a.flip = options.hflip && flip;
  return a;
}

// Crop and flip into bytes, rotate each plane, then normalise: rotation works on pixel values and
// fills with 0, as torchvision's on the uint8 image before ToTensor.
void render_rotated(const uint8_t* src, int64_t channels, int64_t height, int64_t width, const SampleAugment& a,
                    const float* table, float* dst) {
  const auto plane_size = static_cast<size_t>(height * width);
  thread_local std::vector<uint8_t> cropped, rotated;
  cropped.resize(plane_size);
  rotated.resize(plane_size);
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* plane = src + c * height * width;
    for (int64_t y = 0; y < height; ++y) {
      const int64_t sy = y + a.dy;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t sx = (a.flip ? width - 1 - x : x) + a.dx;
        cropped[static_cast<size_t>(y * width + x)] =
            sy < 0 || sy >= height || sx < 0 || sx >= width ? 0 : plane[sy * width + sx];
      }
    }
    image::rotate(cropped.data(), rotated.data(), static_cast<int>(width), static_cast<int>(height), 1, a.angle,
                  image::Interpolation::Nearest);
    const float* lut = table + c * 256;
    float* out = dst + c * height * width;
    for (size_t i = 0; i < plane_size; ++i) out[i] = lut[rotated[i]];
  }
}

std::vector<float> pixel_table(const std::vector<double>& mean, const std::vector<double>& std, bool normalize) {
  std::vector<float> table(mean.size() * 256);
  for (size_t c = 0; c < mean.size(); ++c) {
    for (int v = 0; v < 256; ++v) {
      // Same arithmetic as ToTensor then Normalize (float32 v/255 first), so values match PyTorch's.
      const float unit = static_cast<float>(v) / 255.0f;
      table[c * 256 + v] = normalize ? (unit - static_cast<float>(mean[c])) / static_cast<float>(std[c]) : unit;
    }
  }
  return table;
}

void render_sample(const uint8_t* src, int64_t channels, int64_t height, int64_t width, const SampleAugment& a,
                   const float* table, float* dst) {
  if (a.angle != 0) {
    render_rotated(src, channels, height, width, a, table, dst);
    return;
  }
  // Output columns whose source column x' + dx (x' mirrored when flipping) lies inside the image.
  const int64_t x_begin = a.flip ? std::max<int64_t>(0, a.dx) : std::max<int64_t>(0, -a.dx);
  const int64_t x_end = a.flip ? std::min<int64_t>(width, width + a.dx) : std::min<int64_t>(width, width - a.dx);
  for (int64_t c = 0; c < channels; ++c) {
    const float* lut = table + c * 256;
    const float pad = lut[0];
    const uint8_t* plane = src + c * height * width;
    for (int64_t y = 0; y < height; ++y) {
      float* out = dst + (c * height + y) * width;
      const int64_t sy = y + a.dy;
      if (sy < 0 || sy >= height || x_begin >= x_end) {
        std::fill(out, out + width, pad);
        continue;
      }
      const uint8_t* row = plane + sy * width;
      std::fill(out, out + x_begin, pad);
      if (a.flip) {
        const int64_t last = width - 1 + a.dx;  // source column of output column 0
        for (int64_t x = x_begin; x < x_end; ++x) out[x] = lut[row[last - x]];
      } else {
        for (int64_t x = x_begin; x < x_end; ++x) out[x] = lut[row[x + a.dx]];
      }
      std::fill(out + x_end, out + width, pad);
    }
  }
}

}  // namespace bnn::data
