#pragma once
// Binary 3x3 convolution (padding 1, stride 1 or 2) as XOR + popcount over channel-packed words.
//
// Activations are packed channels-last: `words` = ceil(C / 64) uint64 per pixel, bit c % 64 of word
// c / 64 is channel c, bit 1 = -1, bits above C are 0. Weights are packed the same way per output
// channel and tap: [out][3][3][words].
//
// Zero padding, exactly (Larq Compute Engine's approach): the packed input gets a 1-pixel border of
// all-zero words, i.e. +1 activations, so the inner loop has no bounds checks; an output whose
// window touches the border then holds, for each padded tap, C - 2 * popcount(w_tap) too much
// (the dot product of +1s with that tap's weights). Those amounts are precomputed per output
// channel for each of the 16 border cases (top / bottom / left / right padded, any combination)
// and subtracted: sum = 9C - 2 * popcount(xor over the window) - correction[o][case].
#include <cstdint>
#include <functional>
#include <vector>

#include "infer/isa.h"
#include "infer/thread_pool.h"

namespace bnn::infer {

inline int64_t words_for(int64_t channels) { return (channels + 63) / 64; }

struct BinaryConv {
  int64_t in_channels = 0, out_channels = 0, words = 0, K = 0, blocks = 0;
  std::vector<uint64_t> blocked;  // [blocks][K = 9 * words][16]: 16 output channels side by side
  std::vector<int32_t> correction;  // [16][out]: border case = top | bottom << 1 | left << 2 | right << 3

  // From packed weights [out][3][3][words] (padding bits must be 0: checked, InvalidArgument).
  void init(const uint64_t* bits, int64_t in, int64_t out);
};

inline int64_t conv_out_size(int64_t size, int stride) { return (size - 1) / stride + 1; }

// Called once per work item with that item's final signed sums: outputs [p0, p0 + np) of image n
// (flat index oy * OW + ox) and channels [o0, o0 + no); sums[i * lds + j] is output (p0 + i, o0 + j).
using ConvEpilogue = std::function<void(int64_t n, int64_t p0, int64_t np, int64_t o0, int64_t no, const int32_t* sums,
                                        int64_t lds)>;

// `padded`: [n][h + 2][w + 2][words] with an all-zero border.
void run_binary_conv(const BinaryConv& conv, const uint64_t* padded, int64_t n, int64_t h, int64_t w, int stride, Isa isa,
                     ThreadPool& pool, const ConvEpilogue& epilogue);

// A layer's float output, channels-last with row stride `ld`: out[(n * OH * OW + p) * ld + o] =
// prelu(alpha[o] * sum + add[same index]) (add may be null; prelu(v) = v > 0 ? v : slope[o] * v).
// On AVX-512 the popcount kernel applies it to its accumulators directly; the other instruction
// sets go through the int32 sums. The results are the same either way, bit for bit.
struct FloatEpilogue {
  const float* alpha;
  const float* slope;
  const float* add;
  float* out;
  int64_t ld;
};
void run_binary_conv(const BinaryConv& conv, const uint64_t* padded, int64_t n, int64_t h, int64_t w, int stride, Isa isa,
                     ThreadPool& pool, const FloatEpilogue& epilogue);

// ---- entry points for tests and benchmarks ---------------------------------------------------

// Packs channels-last float rows: bit = (sgn[c] * x < thr[c]). out: [pixels][words_for(C)].
void pack_activations(const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out,
                      Isa isa = Isa::Auto);

// One binary conv from unpadded packed activations [n][h][w][words] and weights [out][3][3][words]
// to int32 sums [n][oh][ow][out] (the exact +-1 convolution with zero padding).
void binary_conv3x3_sums(const uint64_t* act, int64_t n, int64_t h, int64_t w, int64_t in_channels, const uint64_t* weights,
                         int64_t out_channels, int stride, int32_t* sums, int threads = 1, Isa isa = Isa::Auto);

// Seconds per call of one binary conv layer, float in and float out as LibTorch's conv2d: the
// channels-last float input binarised and packed, the popcount convolution, and the float output
// alpha * sum (the model's epilogue kernel without a shortcut). Random data.
struct BenchResult {
  double seconds = 0;
  Isa isa = Isa::Baseline;
};
BenchResult bench_binary_conv(int64_t in_channels, int64_t out_channels, int64_t h, int64_t w, int stride, int64_t batch,
                              int threads, Isa isa, int iterations);

}  // namespace bnn::infer
