#include "image/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "data/random.h"
#include "image/decode.h"
#include "image/resize.h"

namespace bnn::image {
namespace {

using data::hash_words;
using data::Rng;

// Sub-streams of kImageAugmentStream, one per augmentation.
enum Component : uint64_t { kCrop = 1, kFlip = 2, kRotation = 3, kJitter = 4, kLighting = 5 };

// Output sides are bounded so that rotation's 16.16 fixed point and the scratch buffers stay
// small; 4096 is far beyond any training resolution.
constexpr int kMaxOutputSide = 4096;

double uniform(Rng& rng, double lo, double hi) {
  const double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

double normal(Rng& rng, double stddev) {
  // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
  const double u1 = 1.0 - static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
  const double u2 = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
  return stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Python's round(): halves go to the even neighbour (the default FP rounding mode).
int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

Rng stream(uint64_t seed, int64_t epoch, int64_t sample, Component component) {
  return Rng(hash_words({seed, kImageAugmentStream, static_cast<uint64_t>(epoch), static_cast<uint64_t>(sample),
                         static_cast<uint64_t>(component)}));
}

// torchvision's RandomResizedCrop.get_params: ten tries at a random area and log-uniform aspect
// ratio, then a centre crop clamped to the ratio range.
Rect random_resized_crop(const TransformSpec& spec, int width, int height, Rng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(spec.ratio_min), log_hi = std::log(spec.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * uniform(rng, spec.scale_min, spec.scale_max);
    const double aspect = std::exp(uniform(rng, log_lo, log_hi));
    const int w = round_half_even(std::sqrt(target_area * aspect));
    const int h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int i = static_cast<int>(rng.below(static_cast<uint64_t>(height - h) + 1));
      const int j = static_cast<int>(rng.below(static_cast<uint64_t>(width - w) + 1));
      return Rect{j, i, w, h};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < spec.ratio_min) {
    h = round_half_even(w / spec.ratio_min);
  } else if (in_ratio > spec.ratio_max) {
    w = round_half_even(h * spec.ratio_max);
  }
  return Rect{(width - w) / 2, (height - h) / 2, w, h};
}

// Pixels of a decoded region: `view` starts at pixel (x, y) of the whole (scaled) image.
struct Region {
  View view;
  int x = 0;
  int y = 0;
};

// Decodes the pixels of the full-resolution rectangle `crop` at scale M/8; the Region's storage
// lives in `holder`.
using DecodeFn = std::function<Region(const Rect& crop, int scale_eighths, Decoded& holder)>;

View sub_view(const View& v, int x, int y, int w, int h) {
  return View{v.data + static_cast<size_t>(y) * v.stride + static_cast<size_t>(x) * v.channels, w, h, v.channels,
              v.stride};
}

void render_train(int width, int height, bool jpeg, const DecodeFn& decode_region, const TransformSpec& spec,
                  const TransformDraw& draw, uint8_t* dst) {
  const Rect& crop = draw.crop;
  const int target = static_cast<int>(std::ceil(spec.size * spec.dct_headroom));
  const int scale = jpeg && spec.dct_scaling ? choose_scale_eighths(crop.width, crop.height, target, target) : 8;
  Decoded holder;
  const Region region = decode_region(crop, scale, holder);
  // The crop in the region's pixels: integers at full scale (so this is exactly PIL's crop then
  // resize), multiples of 1/8 otherwise. The resize reads only the pixels covering it, so its
  // edge handling is the crop's, as after PIL's crop.
  const double f = scale / 8.0;
  const Box box{crop.x * f - region.x, crop.y * f - region.y, (crop.x + crop.width) * f - region.x,
                (crop.y + crop.height) * f - region.y};
  const int x0 = static_cast<int>(std::floor(box.x0)), y0 = static_cast<int>(std::floor(box.y0));
  const int x1 = std::min(region.view.width, static_cast<int>(std::ceil(box.x1)));
  const int y1 = std::min(region.view.height, static_cast<int>(std::ceil(box.y1)));
  const View source = sub_view(region.view, x0, y0, x1 - x0, y1 - y0);
  const Box local{box.x0 - x0, box.y0 - y0, std::min(box.x1 - x0, double(x1 - x0)), std::min(box.y1 - y0, double(y1 - y0))};
  const Resampler resampler(source.width, source.height, local, spec.size, spec.size);
  resampler.run(source, 0, 0, Rect{0, 0, spec.size, spec.size}, dst);
}

// torchvision's Resize(resize) then CenterCrop(size), computing only the crop's pixels (they
// depend only on the source pixels under their filter, so the result is the same).
void render_eval(int width, int height, bool jpeg, const DecodeFn& decode_region, const TransformSpec& spec,
                 uint8_t* dst) {
  const int shorter = std::min(width, height), longer = std::max(width, height);
  const int new_long = static_cast<int>(static_cast<double>(int64_t{spec.resize} * longer) / shorter);
  const int new_w = width <= height ? spec.resize : new_long;
  const int new_h = width <= height ? new_long : spec.resize;
  if (new_long > kMaxSide) fail(ErrorKind::InvalidArgument, "image: eval resize makes a side larger than 65500");
  // CenterCrop: offsets int(round((h - size) / 2)); when the image is smaller it is zero-padded
  // by (size - h) // 2 on the top/left side first.
  auto offset = [&](int extent) {
    return extent >= spec.size ? round_half_even((extent - spec.size) / 2.0) : -((spec.size - extent) / 2);
  };
  const int top = offset(new_h), left = offset(new_w);
  const Rect window{std::max(left, 0), std::max(top, 0), std::min(left + spec.size, new_w) - std::max(left, 0),
                    std::min(top + spec.size, new_h) - std::max(top, 0)};

  const int scale = jpeg && spec.dct_scaling
                        ? choose_scale_eighths(width, height, static_cast<int>(std::ceil(new_w * spec.dct_headroom)),
                                               static_cast<int>(std::ceil(new_h * spec.dct_headroom)))
                        : 8;
  const double f = scale / 8.0;
  // libjpeg's scaled size is ceil(side * M/8); the box is the exact scaled extent.
  const int scaled_w = static_cast<int>((int64_t{width} * scale + 7) / 8);
  const int scaled_h = static_cast<int>((int64_t{height} * scale + 7) / 8);
  const Resampler resampler(scaled_w, scaled_h, Box{0, 0, width * f, height * f}, new_w, new_h);
  const Rect need = resampler.source_bounds(window);
  // Back to full-resolution pixels for the decoder.
  const int fx0 = static_cast<int>(std::floor(need.x / f)), fy0 = static_cast<int>(std::floor(need.y / f));
  const int fx1 = std::min(width, static_cast<int>(std::ceil((need.x + need.width) / f)));
  const int fy1 = std::min(height, static_cast<int>(std::ceil((need.y + need.height) / f)));
  Decoded holder;
  const Region region = decode_region(Rect{fx0, fy0, fx1 - fx0, fy1 - fy0}, scale, holder);

  const int channels = spec.channels;
  const size_t out_row = static_cast<size_t>(spec.size) * channels;
  const bool padded = window.width != spec.size || window.height != spec.size;
  if (!padded) {
    resampler.run(region.view, region.x, region.y, window, dst);
    return;
  }
  std::vector<uint8_t> inner(static_cast<size_t>(window.width) * window.height * channels);
  resampler.run(region.view, region.x, region.y, window, inner.data());
  std::memset(dst, 0, out_row * spec.size);
  const int oy = window.y - top, ox = window.x - left;
  for (int y = 0; y < window.height; ++y) {
    std::memcpy(dst + (oy + y) * out_row + static_cast<size_t>(ox) * channels,
                inner.data() + static_cast<size_t>(y) * window.width * channels,
                static_cast<size_t>(window.width) * channels);
  }
}

void finish_train(const TransformSpec& spec, const TransformDraw& draw, uint8_t* dst) {
  const int n = spec.size, c = spec.channels;
  const size_t count = static_cast<size_t>(n) * n;
  if (draw.flip) hflip(dst, n, n, c);
  if (spec.rotation_degrees > 0) {
    std::vector<uint8_t> copy(dst, dst + count * c);
    rotate(copy.data(), dst, n, n, c, draw.angle, spec.rotation_interpolation);
  }
  const ColorJitter& j = spec.jitter;
  const bool enabled[4] = {j.brightness > 0, j.contrast > 0, j.saturation > 0, j.hue > 0};
  for (int op : draw.jitter_order) {
    if (!enabled[op]) continue;
    const double factor = draw.jitter_factor[op];
    switch (op) {
      case 0: adjust_brightness(dst, count, c, factor); break;
      case 1: adjust_contrast(dst, count, c, factor); break;
      case 2: adjust_saturation(dst, count, c, factor); break;
      default: adjust_hue(dst, count, c, factor); break;
    }
  }
  if (spec.lighting_std > 0) lighting(dst, count, c, draw.lighting_alpha);
}

void render_with(int width, int height, bool jpeg, const DecodeFn& decode_region, const TransformSpec& spec,
                 uint64_t seed, int64_t epoch, int64_t sample, uint8_t* dst) {
  validate(spec);
  if (spec.mode == TransformMode::Eval) {
    render_eval(width, height, jpeg, decode_region, spec, dst);
    return;
  }
  const TransformDraw draw = draw_transform(spec, width, height, seed, epoch, sample);
  render_train(width, height, jpeg, decode_region, spec, draw, dst);
  finish_train(spec, draw, dst);
}

}  // namespace

void validate(const TransformSpec& spec) {
  auto bad = [](const std::string& what) { fail(ErrorKind::InvalidArgument, "image transform: " + what); };
  if (spec.channels != 1 && spec.channels != 3) bad("channels must be 1 or 3");
  if (!(spec.dct_headroom >= 1 && spec.dct_headroom <= 8)) bad("dct_headroom must be in [1, 8]");
  if (spec.size < 1 || spec.size > kMaxOutputSide) bad("size must be in [1, 4096]");
  if (spec.mode == TransformMode::Eval) {
    if (spec.resize < 1 || spec.resize > kMaxSide) bad("resize must be in [1, 65500]");
    return;
  }
  if (!(spec.scale_min > 0 && spec.scale_min <= spec.scale_max && spec.scale_max <= 1)) {
    bad("scale must satisfy 0 < min <= max <= 1");
  }
  if (!(spec.ratio_min > 0 && spec.ratio_min <= spec.ratio_max && std::isfinite(spec.ratio_max))) {
    bad("ratio must satisfy 0 < min <= max");
  }
  if (!(spec.rotation_degrees >= 0 && spec.rotation_degrees <= 180)) bad("rotation degrees must be in [0, 180]");
  const ColorJitter& j = spec.jitter;
  if (!(j.brightness >= 0 && j.contrast >= 0 && j.saturation >= 0 && std::isfinite(j.brightness) &&
        std::isfinite(j.contrast) && std::isfinite(j.saturation))) {
    bad("brightness, contrast and saturation must be finite and >= 0");
  }
  if (!(j.hue >= 0 && j.hue <= 0.5)) bad("hue must be in [0, 0.5]");
  if (!(spec.lighting_std >= 0 && std::isfinite(spec.lighting_std))) bad("lighting std must be finite and >= 0");
}

TransformDraw draw_transform(const TransformSpec& spec, int width, int height, uint64_t seed, int64_t epoch,
                             int64_t sample) {
  TransformDraw draw;
  if (spec.mode == TransformMode::Eval) return draw;
  Rng crop_rng = stream(seed, epoch, sample, kCrop);
  draw.crop = random_resized_crop(spec, width, height, crop_rng);
  if (spec.hflip) {
    Rng rng = stream(seed, epoch, sample, kFlip);
    draw.flip = uniform(rng, 0, 1) < 0.5;
  }
  if (spec.rotation_degrees > 0) {
    Rng rng = stream(seed, epoch, sample, kRotation);
    draw.angle = uniform(rng, -spec.rotation_degrees, spec.rotation_degrees);
  }
  const ColorJitter& j = spec.jitter;
  if (j.brightness > 0 || j.contrast > 0 || j.saturation > 0 || j.hue > 0) {
    Rng rng = stream(seed, epoch, sample, kJitter);
    // torch.randperm(4), then each factor as ColorJitter.get_params draws it.
    for (int i = 3; i > 0; --i) {
      std::swap(draw.jitter_order[i], draw.jitter_order[rng.below(static_cast<uint64_t>(i) + 1)]);
    }
    const double range[3] = {j.brightness, j.contrast, j.saturation};
    for (int k = 0; k < 3; ++k) {
      if (range[k] > 0) draw.jitter_factor[k] = uniform(rng, std::max(0.0, 1.0 - range[k]), 1.0 + range[k]);
    }
    if (j.hue > 0) draw.jitter_factor[3] = uniform(rng, -j.hue, j.hue);
  }
  if (spec.lighting_std > 0) {
    Rng rng = stream(seed, epoch, sample, kLighting);
    for (double& a : draw.lighting_alpha) a = normal(rng, spec.lighting_std);
  }
  return draw;
}

void render(const uint8_t* encoded, size_t bytes, const TransformSpec& spec, uint64_t seed, int64_t epoch,
            int64_t sample, uint8_t* dst, std::string_view name) {
  const ImageInfo info = probe(encoded, bytes, name);
  const DecodeFn decode_region = [&](const Rect& crop, int scale, Decoded& holder) {
    DecodeRequest request;
    request.channels = spec.channels;
    request.crop = crop;
    request.scale_eighths = scale;
    holder = decode(encoded, bytes, request, name);
    return Region{holder.image.view(), holder.x, holder.y};
  };
  render_with(info.width, info.height, info.format == Format::Jpeg, decode_region, spec, seed, epoch, sample, dst);
}

void render_decoded(const View& pixels, const TransformSpec& spec, uint64_t seed, int64_t epoch, int64_t sample,
                    uint8_t* dst) {
  if ((pixels.channels != 1 && pixels.channels != 3) || pixels.width <= 0 || pixels.height <= 0 ||
      pixels.data == nullptr || pixels.stride < static_cast<size_t>(pixels.width) * pixels.channels) {
    fail(ErrorKind::InvalidArgument, "image: decoded pixels must be a non-empty 1- or 3-channel view");
  }
  // PIL converts the whole image before transforming it; so do we when channels differ.
  Image converted;
  View source = pixels;
  if (pixels.channels != spec.channels) {
    converted.width = pixels.width;
    converted.height = pixels.height;
    converted.channels = spec.channels;
    converted.pixels.resize(static_cast<size_t>(pixels.width) * pixels.height * spec.channels);
    for (int y = 0; y < pixels.height; ++y) {
      const uint8_t* in = pixels.data + static_cast<size_t>(y) * pixels.stride;
      uint8_t* out = converted.pixels.data() + static_cast<size_t>(y) * pixels.width * spec.channels;
      if (spec.channels == 3) gray_to_rgb(in, out, pixels.width);
      else rgb_to_gray(in, out, pixels.width);
    }
    source = converted.view();
  }
  const DecodeFn whole = [&](const Rect&, int, Decoded&) { return Region{source, 0, 0}; };
  render_with(source.width, source.height, false, whole, spec, seed, epoch, sample, dst);
}

}  // namespace bnn::image
