#pragma once
// The ImageNet transforms, from encoded (or already decoded) bytes to one uint8 HWC sample.
//
//   train: RandomResizedCrop(size, scale, ratio) -> RandomHorizontalFlip -> [RandomRotation]
//          -> [ColorJitter] -> [Lighting]
//   eval:  Resize(resize) (shorter side) -> CenterCrop(size)
//
// Geometry, sampling and rounding are torchvision's on PIL images, and every pixel operation is
// Pillow's, so with dct_scaling off the output equals torchvision-on-PIL given the same crop
// parameters (the random numbers themselves come from our own generator, not torch's). With
// dct_scaling on, a JPEG is decoded at 1/2, 1/4 or 1/8 scale whenever the crop is shrunk by at
// least that much anyway, which is faster and differs from PIL by a fraction of a grey level.
//
// Randomness is a pure function of (seed, epoch, sample), so a resumed epoch renders the same
// pixels, and each augmentation draws from its own stream, so switching one on does not move
// the crops of the others.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "data/random.h"
#include "image/image.h"
#include "image/ops.h"

namespace bnn::image {

// The data pipeline's stream of image augmentation draws (data/random.h).
constexpr uint64_t kImageAugmentStream = static_cast<uint64_t>(data::Stream::ImageAugment);

enum class TransformMode { Train, Eval };

struct ColorJitter {  // torchvision's ColorJitter; 0 switches a component off
  double brightness = 0;
  double contrast = 0;
  double saturation = 0;
  double hue = 0;  // at most 0.5
};

struct TransformSpec {
  TransformMode mode = TransformMode::Train;
  int channels = 3;  // 3: RGB; 1: grey as PIL's convert("L")
  int size = 224;    // the output is size x size (train: the crop's output size; eval: the centre crop)
  // train
  double scale_min = 0.08;
  double scale_max = 1.0;
  double ratio_min = 3.0 / 4.0;
  double ratio_max = 4.0 / 3.0;
  bool hflip = true;
  double rotation_degrees = 0;  // uniform in [-d, d]; 0: off
  Interpolation rotation_interpolation = Interpolation::Nearest;  // torchvision's default
  ColorJitter jitter;
  double lighting_std = 0;  // AlexNet PCA lighting's alphastd (0.1 in the recipes); 0: off
  // eval
  int resize = 256;  // shorter side before the centre crop
  // Decode JPEGs at a reduced DCT scale (1/2, 1/4, 1/8) when the scaled crop is still at least
  // dct_headroom times the size the resize produces. The DCT's reduction is sharper than PIL's
  // triangle filter; leaving the resize a shrink of >= dct_headroom keeps its antialiasing in
  // charge, which is what keeps the result within a fraction of a grey level of PIL's.
  bool dct_scaling = true;
  double dct_headroom = 2.0;
};

// Throws InvalidArgument naming the first bad field.
void validate(const TransformSpec& spec);

// One sample's random draw (train mode; eval draws nothing).
struct TransformDraw {
  Rect crop;              // RandomResizedCrop's (j, i, w, h) in full-image pixels
  bool flip = false;
  double angle = 0;       // degrees, counter-clockwise
  int jitter_order[4] = {0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
  double jitter_factor[4] = {1, 1, 1, 0};
  double lighting_alpha[3] = {0, 0, 0};
};

TransformDraw draw_transform(const TransformSpec& spec, int width, int height, uint64_t seed, int64_t epoch,
                             int64_t sample);

// Renders one sample of `encoded` (JPEG or PNG) into dst (size x size x channels, uint8 HWC),
// decoding only the region and scale the transform needs. `name` prefixes error messages.
void render(const uint8_t* encoded, size_t bytes, const TransformSpec& spec, uint64_t seed, int64_t epoch,
            int64_t sample, uint8_t* dst, std::string_view name = "image");

// The same for pixels already decoded (1 or 3 channels; converted to spec.channels as PIL would).
void render_decoded(const View& pixels, const TransformSpec& spec, uint64_t seed, int64_t epoch, int64_t sample,
                    uint8_t* dst);

}  // namespace bnn::image
