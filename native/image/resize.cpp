#include "image/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/errors.h"

namespace bnn::image {
namespace {

// Pillow's PRECISION_BITS for 8-bit images: 32 - 8 bits of pixel - 2 bits of headroom.
constexpr int kPrecisionBits = 22;
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

inline uint8_t clip_fixed(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// One output row of the horizontal pass, columns [begin, end). `in` points at input column
// `origin`.
template <int C>
__attribute__((always_inline)) inline void horizontal_row(const uint8_t* in, int origin, const int* first,
                                                          const int* count, const int32_t* weights, int ksize,
                                                          int begin, int end, uint8_t* out) {
  for (int xx = begin; xx < end; ++xx) {
    const uint8_t* p = in + static_cast<ptrdiff_t>(first[xx] - origin) * C;
    const int32_t* w = weights + static_cast<ptrdiff_t>(xx) * ksize;
    const int n = count[xx];
    int32_t acc[C];
    for (int c = 0; c < C; ++c) acc[c] = kHalf;
    for (int k = 0; k < n; ++k) {
      for (int c = 0; c < C; ++c) acc[c] += p[k * C + c] * w[k];
    }
    for (int c = 0; c < C; ++c) *out++ = clip_fixed(acc[c]);
  }
}

// One output row of the vertical pass over `bytes` bytes: taps are rows of `stride` bytes from
// `in`. Accumulating a chunk at a time, tap by tap, keeps the inner loop a plain widening
// multiply-add over contiguous bytes that the compiler vectorises.
__attribute__((always_inline)) inline void vertical_row(const uint8_t* in, size_t stride, const int32_t* w, int taps,
                                                        size_t bytes, uint8_t* out) {
  constexpr size_t kChunk = 256;
  int32_t acc[kChunk];
  for (size_t x0 = 0; x0 < bytes; x0 += kChunk) {
    const size_t n = std::min(kChunk, bytes - x0);
    for (size_t i = 0; i < n; ++i) acc[i] = kHalf;
    for (int k = 0; k < taps; ++k) {
      const uint8_t* row = in + k * stride + x0;
      const int32_t wk = w[k];
      for (size_t i = 0; i < n; ++i) acc[i] += row[i] * wk;
    }
    for (size_t i = 0; i < n; ++i) out[x0 + i] = clip_fixed(acc[i]);
  }
}

struct Kernels {
  void (*horizontal1)(const uint8_t*, int, const int*, const int*, const int32_t*, int, int, int, uint8_t*);
  void (*horizontal3)(const uint8_t*, int, const int*, const int*, const int32_t*, int, int, int, uint8_t*);
  void (*vertical)(const uint8_t*, size_t, const int32_t*, int, size_t, uint8_t*);
};

#define BNN_IMAGE_KERNELS(suffix, attributes)                                                                  \
  attributes void horizontal1_##suffix(const uint8_t* in, int origin, const int* first, const int* count,      \
                                       const int32_t* weights, int ksize, int begin, int end, uint8_t* out) {  \
    horizontal_row<1>(in, origin, first, count, weights, ksize, begin, end, out);                              \
  }                                                                                                            \
  attributes void horizontal3_##suffix(const uint8_t* in, int origin, const int* first, const int* count,      \
                                       const int32_t* weights, int ksize, int begin, int end, uint8_t* out) {  \
    horizontal_row<3>(in, origin, first, count, weights, ksize, begin, end, out);                              \
  }                                                                                                            \
  attributes void vertical_##suffix(const uint8_t* in, size_t stride, const int32_t* w, int taps, size_t bytes, \
                                    uint8_t* out) {                                                            \
    vertical_row(in, stride, w, taps, bytes, out);                                                             \
  }

BNN_IMAGE_KERNELS(baseline, )
#if defined(__x86_64__) || defined(__i386__)
// The addon is built for the baseline ISA (no -march), so AVX2 code is compiled separately and
// chosen at run time.
BNN_IMAGE_KERNELS(avx2, __attribute__((target("avx2"))))
#endif
#undef BNN_IMAGE_KERNELS

bool detect_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  const char* env = std::getenv("BNN_IMAGE_SIMD");
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

const Kernels& kernels() {
#if defined(__x86_64__) || defined(__i386__)
  static const Kernels avx2{horizontal1_avx2, horizontal3_avx2, vertical_avx2};
  if (resize_uses_avx2()) return avx2;
#endif
  static const Kernels baseline{horizontal1_baseline, horizontal3_baseline, vertical_baseline};
  return baseline;
}

}  // namespace

bool resize_uses_avx2() {
  static const bool use = detect_avx2();
  return use;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc, with its float box and double arithmetic.
Resampler::Axis Resampler::make_axis(int in_size, float in0, float in1, int out_size) {
  Axis axis;
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  axis.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  axis.identity = in0 == 0.0f && in1 == static_cast<float>(in_size) && out_size == in_size;
  axis.first.resize(out_size);
  axis.count.resize(out_size);
  axis.weights.assign(static_cast<size_t>(out_size) * axis.ksize, 0);
  std::vector<double> k(axis.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    int32_t* w = axis.weights.data() + static_cast<size_t>(xx) * axis.ksize;
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      w[x] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    axis.first[xx] = xmin;
    axis.count[xx] = std::max(xmax, 0);
  }
  return axis;
}

Resampler::Resampler(int in_width, int in_height, Box box, int out_width, int out_height)
    : in_width_(in_width), in_height_(in_height), out_width_(out_width), out_height_(out_height) {
  const float x0 = static_cast<float>(box.x0), y0 = static_cast<float>(box.y0);
  const float x1 = static_cast<float>(box.x1), y1 = static_cast<float>(box.y1);
  if (in_width <= 0 || in_height <= 0 || out_width <= 0 || out_height <= 0 || out_width > kMaxSide ||
      out_height > kMaxSide || !(x0 >= 0 && x0 < x1 && x1 <= in_width && y0 >= 0 && y0 < y1 && y1 <= in_height)) {
    fail(ErrorKind::InvalidArgument, "image: resize box (" + std::to_string(box.x0) + ", " + std::to_string(box.y0) +
                                         ", " + std::to_string(box.x1) + ", " + std::to_string(box.y1) + ") of a " +
                                         std::to_string(in_width) + "x" + std::to_string(in_height) + " image to " +
                                         std::to_string(out_width) + "x" + std::to_string(out_height) + " is invalid");
  }
  horizontal_ = make_axis(in_width, x0, x1, out_width);
  vertical_ = make_axis(in_height, y0, y1, out_height);
  vertical_first_ = !horizontal_.identity && !vertical_.identity && out_height < in_height &&
                    2 * (out_width - in_width) > out_height - in_height;
}

Rect Resampler::source_bounds(const Rect& window) const {
  const int xb = window.x, xe = window.x + window.width - 1;
  const int yb = window.y, ye = window.y + window.height - 1;
  const int x0 = horizontal_.identity ? xb : horizontal_.first[xb];
  const int x1 = horizontal_.identity ? xe + 1 : horizontal_.first[xe] + horizontal_.count[xe];
  const int y0 = vertical_.identity ? yb : vertical_.first[yb];
  const int y1 = vertical_.identity ? ye + 1 : vertical_.first[ye] + vertical_.count[ye];
  return Rect{x0, y0, x1 - x0, y1 - y0};
}

void Resampler::run(const View& src, int src_x, int src_y, const Rect& window, uint8_t* dst) const {
  const int channels = src.channels;
  if ((channels != 1 && channels != 3) || window.width <= 0 || window.height <= 0 || window.x < 0 ||
      window.y < 0 || window.x + window.width > out_width_ || window.y + window.height > out_height_) {
    fail(ErrorKind::InvalidArgument, "image: resize window or channel count is invalid");
  }
  const Rect need = source_bounds(window);
  if (need.x < src_x || need.y < src_y || need.x + need.width > src_x + src.width ||
      need.y + need.height > src_y + src.height) {
    fail(ErrorKind::InvalidArgument, "image: resize source does not cover the pixels the window needs");
  }
  const Kernels& k = kernels();
  const size_t out_row = static_cast<size_t>(window.width) * channels;
  auto src_row = [&](int y) { return src.data + static_cast<size_t>(y - src_y) * src.stride; };
  auto horizontal = [&](const uint8_t* in, int origin, uint8_t* out) {
    (channels == 3 ? k.horizontal3 : k.horizontal1)(in, origin, horizontal_.first.data(), horizontal_.count.data(),
                                                    horizontal_.weights.data(), horizontal_.ksize, window.x,
                                                    window.x + window.width, out);
  };
  auto vertical = [&](const uint8_t* rows, int rows_origin, size_t stride, int y, size_t bytes, uint8_t* out) {
    k.vertical(rows + static_cast<size_t>(vertical_.first[y] - rows_origin) * stride, stride,
               vertical_.weights.data() + static_cast<size_t>(y) * vertical_.ksize, vertical_.count[y], bytes, out);
  };

  if (vertical_first_) {
    // Vertical pass over the source columns the window's horizontal taps read, then horizontal.
    const size_t mid_row = static_cast<size_t>(need.width) * channels;
    std::vector<uint8_t> temp(mid_row * window.height);
    const uint8_t* columns = src.data + static_cast<size_t>(need.x - src_x) * channels;
    for (int yy = 0; yy < window.height; ++yy) {
      vertical(columns, src_y, src.stride, window.y + yy, mid_row, temp.data() + yy * mid_row);
    }
    for (int yy = 0; yy < window.height; ++yy) horizontal(temp.data() + yy * mid_row, need.x, dst + yy * out_row);
    return;
  }

  // Horizontal pass into rows need.y .. need.y + need.height of an intermediate image, or, when
  // the pass is an identity, read the source directly.
  std::vector<uint8_t> temp;
  const uint8_t* mid = nullptr;
  size_t mid_stride = 0;
  if (horizontal_.identity) {
    mid = src_row(need.y) + static_cast<size_t>(window.x - src_x) * channels;
    mid_stride = src.stride;
  } else {
    temp.resize(out_row * need.height);
    for (int y = 0; y < need.height; ++y) horizontal(src_row(need.y + y), src_x, temp.data() + y * out_row);
    mid = temp.data();
    mid_stride = out_row;
  }
  for (int yy = 0; yy < window.height; ++yy) {
    uint8_t* out = dst + yy * out_row;
    const int y = window.y + yy;
    if (vertical_.identity) {
      std::memcpy(out, mid + static_cast<size_t>(y - need.y) * mid_stride, out_row);
    } else {
      vertical(mid, need.y, mid_stride, y, out_row, out);
    }
  }
}

void resize(const View& src, int out_width, int out_height, uint8_t* dst) {
  const Resampler resampler(src.width, src.height, Box{0, 0, static_cast<double>(src.width),
                                                       static_cast<double>(src.height)},
                            out_width, out_height);
  resampler.run(src, 0, 0, Rect{0, 0, out_width, out_height}, dst);
}

}  // namespace bnn::image
