#include "image/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace bnn::image {
namespace {

inline uint8_t clip8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

// PIL's MULDIV255: a*b/255 rounded, without a division.
inline int muldiv255(int a, int b) {
  const int tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

// Image.blend(degenerate, image, alpha) for one byte: float32 arithmetic as ImagingBlend does;
// inside [0, 1] the result cannot leave [0, 255] and is truncated, outside it is clipped.
inline uint8_t blend(int degenerate, int value, float alpha) {
  const float v = static_cast<float>(degenerate) + alpha * static_cast<float>(value - degenerate);
  if (alpha >= 0.0f && alpha <= 1.0f) return static_cast<uint8_t>(v);
  if (v <= 0.0f) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(v);
}

inline uint8_t gray_of(const uint8_t* rgb) {
  return static_cast<uint8_t>((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

// Python's round(x, 15): the double nearest to x rounded to 15 decimals. glibc's printf rounds the
// exact binary value half-to-even like CPython's dtoa, and strtod reads it back exactly.
double round15(double x) {
  char text[64];
  std::snprintf(text, sizeof text, "%.15f", x);
  return std::strtod(text, nullptr);
}

// PIL's rgb2hsv_row / hsv2rgb, keeping their exact mix of float and double arithmetic (the
// rounding of the result depends on it).
void rgb_to_hsv(const uint8_t* in, uint8_t* out) {
  const uint8_t r = in[0], g = in[1], b = in[2];
  const uint8_t maxc = std::max(r, std::max(g, b));
  const uint8_t minc = std::min(r, std::min(g, b));
  uint8_t uh = 0, us = 0;
  if (minc != maxc) {
    const float cr = static_cast<float>(maxc - minc);
    const float s = cr / static_cast<float>(maxc);
    const float rc = static_cast<float>(maxc - r) / cr;
    const float gc = static_cast<float>(maxc - g) / cr;
    const float bc = static_cast<float>(maxc - b) / cr;
    float h;
    if (r == maxc) {
      h = bc - gc;
    } else if (g == maxc) {
      h = static_cast<float>(2.0 + rc - bc);
    } else {
      h = static_cast<float>(4.0 + gc - rc);
    }
    h = static_cast<float>(std::fmod(h / 6.0 + 1.0, 1.0));
    uh = clip8(static_cast<int>(h * 255.0));
    us = clip8(static_cast<int>(s * 255.0));
  }
  out[0] = uh;
  out[1] = us;
  out[2] = maxc;
}

void hsv_to_rgb(const uint8_t* in, uint8_t* out) {
  const uint8_t h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  const int i = static_cast<int>(std::floor(static_cast<float>(h) * 6.0 / 255.0));
  const float f = static_cast<float>(static_cast<float>(h) * 6.0 / 255.0 - static_cast<float>(i));
  const float fs = static_cast<float>(static_cast<float>(s) / 255.0);
  const uint8_t p = clip8(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs))));
  const uint8_t q = clip8(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs * f))));
  const uint8_t t = clip8(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs * (1.0 - f)))));
  switch (i % 6) {
    case 0: out[0] = v, out[1] = t, out[2] = p; break;
    case 1: out[0] = q, out[1] = v, out[2] = p; break;
    case 2: out[0] = p, out[1] = v, out[2] = t; break;
    case 3: out[0] = p, out[1] = q, out[2] = v; break;
    case 4: out[0] = t, out[1] = p, out[2] = v; break;
    default: out[0] = v, out[1] = p, out[2] = q; break;
  }
}

}  // namespace

void rgb_to_gray(const uint8_t* rgb, uint8_t* gray, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) gray[i] = gray_of(rgb + 3 * i);
}

void gray_to_rgb(const uint8_t* gray, uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
}

void inverted_cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* in = cmyk + 4 * i;
    const int nk = in[3];  // 255 - K, and K = 255 - stored
    for (int c = 0; c < 3; ++c) rgb[3 * i + c] = clip8(nk - muldiv255(255 - in[c], nk));
  }
}

void hflip(uint8_t* pixels, int width, int height, int channels) {
  const size_t stride = static_cast<size_t>(width) * channels;
  for (int y = 0; y < height; ++y) {
    uint8_t* row = pixels + y * stride;
    for (int l = 0, r = width - 1; l < r; ++l, --r) {
      for (int c = 0; c < channels; ++c) std::swap(row[l * channels + c], row[r * channels + c]);
    }
  }
}

void rotate(const uint8_t* src, uint8_t* dst, int width, int height, int channels, double degrees,
            Interpolation interpolation) {
  const size_t stride = static_cast<size_t>(width) * channels;
  const size_t bytes = stride * static_cast<size_t>(height);
  // Python's float modulo: the result takes the divisor's sign.
  double angle = std::fmod(degrees, 360.0);
  if (angle < 0) angle += 360.0;
  // Image.rotate's shortcuts: these angles are exact transposes, not resampled.
  if (angle == 0.0) {
    std::memcpy(dst, src, bytes);
    return;
  }
  if (angle == 180.0 || ((angle == 90.0 || angle == 270.0) && width == height)) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        int sx, sy;
        if (angle == 180.0) sx = width - 1 - x, sy = height - 1 - y;
        else if (angle == 90.0) sx = width - 1 - y, sy = x;
        else sx = y, sy = height - 1 - x;
        std::memcpy(dst + y * stride + x * channels, src + sy * stride + sx * channels, channels);
      }
    }
    return;
  }
  // The inverse (output -> input) affine matrix exactly as Image.rotate builds it.
  const double radians = -(angle * (M_PI / 180.0));
  double a[6] = {round15(std::cos(radians)), round15(std::sin(radians)), 0.0,
                 round15(-std::sin(radians)), round15(std::cos(radians)), 0.0};
  const double cx = width / 2.0, cy = height / 2.0;
  a[2] = a[0] * -cx + a[1] * -cy + a[2] + cx;
  a[5] = a[3] * -cx + a[4] * -cy + a[5] + cy;
  std::memset(dst, 0, bytes);

  if (interpolation == Interpolation::Nearest) {
    // ImagingTransformAffine's 16.16 fixed-point walk (affine_fixed); its range check always
    // passes for images below 32768 pixels a side, which render() guarantees.
    auto fix = [](double v) { return static_cast<int>(std::floor(v * 65536.0 + 0.5)); };
    const int a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int row_x = fix(a[2] + a[1] * 0.5 + a[0] * 0.5);
    int row_y = fix(a[5] + a[4] * 0.5 + a[3] * 0.5);
    for (int y = 0; y < height; ++y, row_x += a1, row_y += a4) {
      int xx = row_x, yy = row_y;
      uint8_t* out = dst + y * stride;
      for (int x = 0; x < width; ++x, xx += a0, yy += a3) {
        const int sx = xx >> 16, sy = yy >> 16;
        if (sx >= 0 && sx < width && sy >= 0 && sy < height) {
          std::memcpy(out + x * channels, src + sy * stride + sx * channels, channels);
        }
      }
    }
    return;
  }
  // ImagingGenericTransform with PIL's bilinear_filter: per-pixel double arithmetic, edges clamped.
  auto floor_int = [](double v) { return v < 0.0 ? static_cast<int>(std::floor(v)) : static_cast<int>(v); };
  auto clamp = [](int v, int size) { return v < 0 ? 0 : v < size ? v : size - 1; };
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double xin = x + 0.5, yin = y + 0.5;
      double xx = a[0] * xin + a[1] * yin + a[2];
      double yy = a[3] * xin + a[4] * yin + a[5];
      if (xx < 0.0 || xx >= width || yy < 0.0 || yy >= height) continue;
      xx -= 0.5;
      yy -= 0.5;
      const int x0 = floor_int(xx), y0 = floor_int(yy);
      const double dx = xx - x0, dy = yy - y0;
      const uint8_t* row0 = src + clamp(y0, height) * stride;
      const uint8_t* row1 = (y0 + 1 >= 0 && y0 + 1 < height) ? src + (y0 + 1) * stride : nullptr;
      const int c0 = clamp(x0, width) * channels, c1 = clamp(x0 + 1, width) * channels;
      for (int c = 0; c < channels; ++c) {
        const double v1 = row0[c0 + c] + (row0[c1 + c] - row0[c0 + c]) * dx;
        const double v2 = row1 ? row1[c0 + c] + (row1[c1 + c] - row1[c0 + c]) * dx : v1;
        dst[y * stride + x * channels + c] = static_cast<uint8_t>(v1 + (v2 - v1) * dy);
      }
    }
  }
}

void adjust_brightness(uint8_t* pixels, size_t count, int channels, double factor) {
  const float alpha = static_cast<float>(factor);
  uint8_t table[256];
  for (int v = 0; v < 256; ++v) table[v] = blend(0, v, alpha);
  for (size_t i = 0; i < count * channels; ++i) pixels[i] = table[pixels[i]];
}

void adjust_contrast(uint8_t* pixels, size_t count, int channels, double factor) {
  if (count == 0) return;
  // ImageEnhance.Contrast blends with a flat image at the rounded mean of the "L" image.
  uint64_t sum = 0;
  if (channels == 3) {
    for (size_t i = 0; i < count; ++i) sum += gray_of(pixels + 3 * i);
  } else {
    for (size_t i = 0; i < count; ++i) sum += pixels[i];
  }
  const int mean = static_cast<int>(static_cast<double>(sum) / static_cast<double>(count) + 0.5);
  const float alpha = static_cast<float>(factor);
  uint8_t table[256];
  for (int v = 0; v < 256; ++v) table[v] = blend(mean, v, alpha);
  for (size_t i = 0; i < count * channels; ++i) pixels[i] = table[pixels[i]];
}

void adjust_saturation(uint8_t* pixels, size_t count, int channels, double factor) {
  if (channels != 3) return;
  const float alpha = static_cast<float>(factor);
  for (size_t i = 0; i < count; ++i) {
    uint8_t* p = pixels + 3 * i;
    const int gray = gray_of(p);
    for (int c = 0; c < 3; ++c) p[c] = blend(gray, p[c], alpha);
  }
}

void adjust_hue(uint8_t* pixels, size_t count, int channels, double factor) {
  if (channels != 3) return;
  // np.int32(factor * 255).astype(np.uint8): truncate toward zero, then wrap modulo 256.
  const auto shift = static_cast<uint8_t>(static_cast<int32_t>(factor * 255));
  for (size_t i = 0; i < count; ++i) {
    uint8_t* p = pixels + 3 * i;
    uint8_t hsv[3];
    rgb_to_hsv(p, hsv);
    hsv[0] = static_cast<uint8_t>(hsv[0] + shift);
    hsv_to_rgb(hsv, p);
  }
}

void lighting(uint8_t* pixels, size_t count, int channels, const double alpha[3]) {
  if (channels != 3) return;
  static constexpr double kEigval[3] = {0.2175, 0.0188, 0.0045};
  static constexpr double kEigvec[3][3] = {
      {-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}};
  uint8_t table[3][256];
  for (int c = 0; c < 3; ++c) {
    double offset = 0;
    for (int j = 0; j < 3; ++j) offset += kEigvec[c][j] * alpha[j] * kEigval[j];
    for (int v = 0; v < 256; ++v) table[c][v] = clip8(static_cast<int>(std::lround(v + 255.0 * offset)));
  }
  for (size_t i = 0; i < count; ++i) {
    for (int c = 0; c < 3; ++c) pixels[3 * i + c] = table[c][pixels[3 * i + c]];
  }
}

}  // namespace bnn::image
