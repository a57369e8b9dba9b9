#pragma once
// Whole-image pixel operations, each written to give PIL's bytes exactly (the formulas, rounding
// and float widths of Pillow's C code), so that a pipeline built from them matches torchvision
// transforms applied to PIL images. All work in place on a tightly packed image or write to a
// caller's buffer; none allocates more than one row or image of scratch.
#include <cstddef>
#include <cstdint>

#include "image/image.h"

namespace bnn::image {

// PIL's convert("L") from RGB: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (ITU-R 601-2).
void rgb_to_gray(const uint8_t* rgb, uint8_t* gray, size_t pixels);
// PIL's convert("RGB") from "L": the grey value in all three channels. `gray` may not alias `rgb`.
void gray_to_rgb(const uint8_t* gray, uint8_t* rgb, size_t pixels);
// PIL's convert("RGB") of a JPEG's CMYK pixels as libjpeg returns them: PIL assumes Adobe's
// inverted polarity for every CMYK JPEG, so the stored bytes are 255 - C, ... and
// R = K' - K'*(255 - C')/255 with PIL's MULDIV255 rounding (K' = stored K).
void inverted_cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, size_t pixels);

// Mirrors each row in place.
void hflip(uint8_t* pixels, int width, int height, int channels);

enum class Interpolation { Nearest, Bilinear };

// PIL's Image.rotate(degrees, resample, expand=False, center=None, fillcolor=0) as torchvision's
// RandomRotation calls it: counter-clockwise about the image centre, same size, pixels from
// outside the source are 0. `src` and `dst` are distinct width x height x channels buffers.
void rotate(const uint8_t* src, uint8_t* dst, int width, int height, int channels, double degrees,
            Interpolation interpolation);

// torchvision's functional_pil adjustments (ImageEnhance / Image.blend in float32, truncating to
// uint8, clipping only when the factor extrapolates), in place on `pixels` of `count` pixels.
void adjust_brightness(uint8_t* pixels, size_t count, int channels, double factor);
void adjust_contrast(uint8_t* pixels, size_t count, int channels, double factor);
// Saturation and hue leave a 1-channel image unchanged, as torchvision's PIL path does.
void adjust_saturation(uint8_t* pixels, size_t count, int channels, double factor);
// factor in [-0.5, 0.5]: the HSV hue byte is shifted by int(factor * 255), wrapping.
void adjust_hue(uint8_t* pixels, size_t count, int channels, double factor);

// AlexNet's PCA lighting noise as the fb.resnet.torch "Lighting" transform adds it to [0, 1]
// pixels: rgb = eigvec * (alpha .* eigval), here scaled by 255, added, rounded and clipped to
// uint8. `alpha` is the three N(0, alphastd) draws. A 1-channel image is left unchanged.
void lighting(uint8_t* pixels, size_t count, int channels, const double alpha[3]);

}  // namespace bnn::image
