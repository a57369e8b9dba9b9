#pragma once
// The per-sample transform of the input pipeline: random crop with zero padding, random horizontal
// flip, and uint8 -> float normalisation, fused into one pass that writes the batch buffer; then,
// when asked for, a random rotation (the tricks' CIFAR-100 recipe) before the normalisation.
//
// Semantics follow torchvision's RandomCrop(size = H x W, padding = p) then RandomHorizontalFlip
// then ToTensor + Normalize: the image is padded with pixel value 0 (which normalises to
// -mean/std, not to 0), a window is cut at a uniform offset in [0, 2p] per axis, and the result is
// mirrored with probability 1/2. RandomRotation(degrees) follows, as torchvision's (nearest
// neighbour, fill 0, about the centre, by an angle uniform in [-degrees, degrees]).
#include <cstdint>
#include <vector>

namespace bnn::data {

struct AugmentOptions {
  int64_t crop_padding = 0;  // 0: no random crop
  bool hflip = false;
  double rotation = 0;  // degrees; 0: off
};

// One sample's draw: its window is shifted by (dy, dx), each in [-p, p], then mirrored if flip.
struct SampleAugment {
  int64_t dy = 0;
  int64_t dx = 0;
  bool flip = false;
  double angle = 0;  // degrees, counter-clockwise
};

// The draw for `sample` (its dataset index) in `epoch`: a pure function of its arguments, so it is
// the same whether the epoch runs from its first batch or resumes at batch k.
SampleAugment draw_augment(const AugmentOptions& options, uint64_t seed, int64_t epoch, int64_t sample);

// A 256-entry table per channel mapping a pixel byte to its float value: (v/255 - mean) / std when
// `normalize`, else v/255. A table lookup is both faster and exactly repeatable.
std::vector<float> pixel_table(const std::vector<double>& mean, const std::vector<double>& std, bool normalize);

// render_sample's path for a sample with an angle.
void render_rotated(const uint8_t* src, int64_t channels, int64_t height, int64_t width, const SampleAugment& augment,
                    const float* table, float* dst);

// Writes one [C, H, W] sample to `dst` as floats: dst[c][y][x] = table[c][src[c][y+dy][x'+dx]]
// where x' = W-1-x if flip else x, and table[c][0] where that pixel falls in the padding.
void render_sample(const uint8_t* src, int64_t channels, int64_t height, int64_t width, const SampleAugment& augment,
                   const float* table, float* dst);

}  // namespace bnn::data
