#pragma once
// Bilinear resampling that reproduces Pillow's Image.resize(size, BILINEAR, box) byte for byte
// (ImagingResample: a triangle filter whose support widens with the shrink factor, so shrinking
// is antialiased; a horizontal pass, rounded to uint8, then a vertical pass; per-output weights
// normalised and held as 22-bit fixed point). torchvision's Resize and RandomResizedCrop on PIL
// images reduce to this call, so matching it is what makes our transforms match theirs.
#include <cstdint>
#include <vector>

#include "image/image.h"

namespace bnn::image {

// The geometry of one resize: `box` of an in_width x in_height image to out_width x out_height.
// Weights are computed once here; run() may then be called from any number of threads.
//
// Pillow 13 runs the vertical pass first when the height shrinks and
// 2 * (out_width - in_width) > out_height - in_height, otherwise the horizontal pass first; the
// rule was measured against Pillow (compare_pil.py checks it), and the order matters because the
// intermediate image is rounded to uint8.
class Resampler {
 public:
  // Throws InvalidArgument unless 0 <= x0 < x1 <= in_width (same for y) and the sizes are positive.
  // The box is rounded to float first, as Pillow receives it.
  Resampler(int in_width, int in_height, Box box, int out_width, int out_height);

  // The input pixels that output `window` reads: decode at least these.
  Rect source_bounds(const Rect& window) const;

  // Writes `window` of the resized image to dst (tightly packed, window.width x window.height x
  // src.channels). `src` holds input pixels starting at input coordinate (src_x, src_y) and must
  // cover source_bounds(window); channels may be 1 or 3.
  void run(const View& src, int src_x, int src_y, const Rect& window, uint8_t* dst) const;

  int out_width() const { return out_width_; }
  int out_height() const { return out_height_; }

 private:
  // Per output coordinate: first input index, tap count, and ksize 22-bit weights.
  struct Axis {
    int ksize = 0;
    std::vector<int> first;
    std::vector<int> count;
    std::vector<int32_t> weights;
    bool identity = false;  // box and size unchanged: Pillow skips the pass, and so do we
  };
  static Axis make_axis(int in_size, float in0, float in1, int out_size);

  int in_width_, in_height_, out_width_, out_height_;
  Axis horizontal_, vertical_;
  bool vertical_first_ = false;
};

// The whole of `src` (box (0, 0, w, h)) resized to out_width x out_height into dst.
void resize(const View& src, int out_width, int out_height, uint8_t* dst);

// Whether run() uses the AVX2 kernels: true on a CPU that has AVX2 unless the environment sets
// BNN_IMAGE_SIMD=0. Both paths give identical bytes.
bool resize_uses_avx2();

}  // namespace bnn::image
