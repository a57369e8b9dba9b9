#pragma once
// The image core's shared vocabulary: rectangles, pixel views and the limits that keep a hostile
// file from asking for unbounded memory. The image core is plain C++17 with no LibTorch and no
// Node headers, so it can be fuzzed under AddressSanitizer on its own and reused by `infer`.
//
// Pixels are always interleaved uint8 (HWC), 1 channel (PIL's "L") or 3 (RGB).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bnn::image {

// A side above kMaxSide or an area above kMaxPixels is rejected from the header, before anything
// is allocated. 65500 is JPEG's own limit; 2^28 pixels (768 MiB as RGB) is far beyond any
// training photograph yet small enough that a forged header cannot exhaust memory.
constexpr int kMaxSide = 65500;
constexpr int64_t kMaxPixels = int64_t{1} << 28;

// Integer pixel rectangle.
struct Rect {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
};

// Fractional rectangle in PIL's resize-box convention: (x0, y0) and (x1, y1) are pixel edges,
// so the box (0, 0, w, h) is the whole of a w x h image.
struct Box {
  double x0 = 0;
  double y0 = 0;
  double x1 = 0;
  double y1 = 0;
};

// A read-only window onto interleaved pixels; stride is the byte distance between rows.
struct View {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  size_t stride = 0;
};

// An owned, tightly packed image.
struct Image {
  std::vector<uint8_t> pixels;
  int width = 0;
  int height = 0;
  int channels = 0;

  View view() const {
    return View{pixels.data(), width, height, channels, static_cast<size_t>(width) * static_cast<size_t>(channels)};
  }
};

}  // namespace bnn::image
