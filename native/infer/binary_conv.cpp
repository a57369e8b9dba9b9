#include "infer/binary_conv.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "core/errors.h"
#include "infer/kernels.h"

namespace bnn::infer {

namespace {
constexpr int64_t kPixelChunk = 48;   // outputs per work item: a multiple of the kernels' pixel blocks
constexpr int64_t kChannelChunk = 64; // output channels per work item (4 weight blocks)
}  // namespace

void BinaryConv::init(const uint64_t* bits, int64_t in, int64_t out) {
  if (in < 1 || out < 1) fail(ErrorKind::InvalidArgument, "binary conv: channel counts must be positive");
  in_channels = in;
  out_channels = out;
  words = words_for(in);
  K = 9 * words;
  blocks = (out + detail::kBlock - 1) / detail::kBlock;
  const uint64_t last_mask = in % 64 == 0 ? ~uint64_t{0} : ((uint64_t{1} << (in % 64)) - 1);
  blocked.assign(static_cast<size_t>(blocks * K * detail::kBlock), 0);
  correction.assign(static_cast<size_t>(16 * out), 0);
  for (int64_t o = 0; o < out; ++o) {
    int32_t tap_value[9];
    for (int64_t t = 0; t < 9; ++t) {
      int32_t ones = 0;
      for (int64_t wd = 0; wd < words; ++wd) {
        const uint64_t v = bits[(o * 9 + t) * words + wd];
        if (wd == words - 1 && (v & ~last_mask)) {
          fail(ErrorKind::InvalidArgument, "binary conv: weight padding bits above channel " + std::to_string(in) + " are not 0");
        }
        ones += __builtin_popcountll(v);
        blocked[static_cast<size_t>(((o / detail::kBlock) * K + t * words + wd) * detail::kBlock + o % detail::kBlock)] = v;
      }
      tap_value[t] = static_cast<int32_t>(in) - 2 * ones;  // dot product of this tap's weights with +1s
    }
    for (int c = 0; c < 16; ++c) {
      const bool top = c & 1, bottom = c & 2, left = c & 4, right = c & 8;
      int32_t sum = 0;
      for (int kh = 0; kh < 3; ++kh) {
        for (int kw = 0; kw < 3; ++kw) {
          const bool padded = (kh == 0 && top) || (kh == 2 && bottom) || (kw == 0 && left) || (kw == 2 && right);
          if (padded) sum += tap_value[kh * 3 + kw];
        }
      }
      correction[static_cast<size_t>(c * out + o)] = sum;
    }
  }
}

namespace {

// Both entry points: `epilogue` gets each item's int32 sums, or, with `fe`, the float layer output
// is written (on AVX-512 by the popcount kernel itself, elsewhere through the int32 sums).
void run_conv(const BinaryConv& conv, const uint64_t* padded, int64_t n, int64_t h, int64_t w, int stride, Isa isa,
              ThreadPool& pool, const ConvEpilogue* epilogue, const FloatEpilogue* fe) {
  if (stride != 1 && stride != 2) fail(ErrorKind::InvalidArgument, "binary conv: stride must be 1 or 2");
  const int64_t oh = conv_out_size(h, stride), ow = conv_out_size(w, stride), opix = oh * ow;
  const int64_t words = conv.words, K = conv.K, O = conv.out_channels;
  // Wide outputs read their windows straight from the padded input, one output row segment per work
  // item (consecutive outputs' windows are `stride * words` apart). Narrow ones (7x7, 4x4) would
  // leave the pixel blocks mostly empty that way, so their windows are copied (im2col) into
  // 48-output chunks that cross rows.
  const bool direct = ow >= 16;
  const int64_t xchunks = (ow + kPixelChunk - 1) / kPixelChunk;
  const int64_t pchunks = direct ? oh * xchunks : (opix + kPixelChunk - 1) / kPixelChunk;
  const int64_t ochunks = (O + kChannelChunk - 1) / kChannelChunk;
  const int64_t pw = w + 2, ph = h + 2;
  const int32_t full = static_cast<int32_t>(9 * conv.in_channels);
  struct Scratch {
    std::vector<uint64_t> patches;
    std::vector<int32_t> pop;
  };
  std::vector<Scratch> scratch(static_cast<size_t>(pool.size()));
  pool.parallel_for(n * pchunks * ochunks, [&](int64_t item, int slot) {
    const int64_t oc = item % ochunks, pc = (item / ochunks) % pchunks, img = item / (ochunks * pchunks);
    const int64_t o0 = oc * kChannelChunk, no = std::min(kChannelChunk, O - o0);
    Scratch& s = scratch[static_cast<size_t>(slot)];
    s.pop.resize(static_cast<size_t>(kPixelChunk * kChannelChunk));
    const int64_t row_words = 3 * words;
    int64_t p0, np;
    detail::Windows win;
    if (direct) {
      const int64_t oy = pc / xchunks, ox0 = (pc % xchunks) * kPixelChunk;
      np = std::min(kPixelChunk, ow - ox0);
      p0 = oy * ow + ox0;
      win = {padded + ((img * ph + oy * stride) * pw + ox0 * stride) * words, stride * words, pw * words, row_words};
    } else {
      p0 = pc * kPixelChunk;
      np = std::min(kPixelChunk, opix - p0);
      s.patches.resize(static_cast<size_t>(kPixelChunk * K));
      int64_t oy = p0 / ow, ox = p0 % ow;  // walked forward, not divided per output
      for (int64_t i = 0; i < np; ++i) {
        const uint64_t* src = padded + ((img * ph + oy * stride) * pw + ox * stride) * words;
        uint64_t* dst = s.patches.data() + i * K;
        // A plain loop: the runs are short (3 words at 64 channels), too short for a memcpy call.
        for (int kh = 0; kh < 3; ++kh) {
          const uint64_t* s_row = src + kh * pw * words;
          uint64_t* d_row = dst + kh * row_words;
          for (int64_t q = 0; q < row_words; ++q) d_row[q] = s_row[q];
        }
        if (++ox == ow) ox = 0, ++oy;
      }
      win = {s.patches.data(), K, row_words, row_words};
    }
    const int64_t nblocks = (no + detail::kBlock - 1) / detail::kBlock;
    if (fe && (isa == Isa::Avx512 || isa == Isa::Avx512Bw)) {
#if defined(__x86_64__)
      const int32_t* corr_rows[kPixelChunk];
      int64_t oy = p0 / ow, ox = p0 % ow;
      for (int64_t i = 0; i < np; ++i) {
        const int c = (oy * stride - 1 < 0 ? 1 : 0) | (oy * stride + 1 > h - 1 ? 2 : 0) | (ox * stride - 1 < 0 ? 4 : 0) |
                      (ox * stride + 1 > w - 1 ? 8 : 0);
        corr_rows[i] = c == 0 ? nullptr : conv.correction.data() + c * O + o0;
        if (++ox == ow) ox = 0, ++oy;
      }
      const size_t base = static_cast<size_t>((img * opix + p0) * fe->ld + o0);
      for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t ob = b * detail::kBlock;
        const uint64_t* wb = conv.blocked.data() + (o0 / detail::kBlock + b) * K * detail::kBlock;
        const int32_t* corr_b[kPixelChunk];
        for (int64_t i = 0; i < np; ++i) corr_b[i] = corr_rows[i] ? corr_rows[i] + ob : nullptr;
        detail::BlockEpilogue e;
        e.full = full;
        e.corr = corr_b;
        e.alpha = fe->alpha + o0 + ob;
        e.slope = fe->slope + o0 + ob;
        e.add = fe->add ? fe->add + base + ob : nullptr;
        e.lda = fe->ld;
        e.out = fe->out + base + ob;
        e.ldo = fe->ld;
        e.nch = static_cast<int>(std::min<int64_t>(detail::kBlock, no - ob));
        if (isa == Isa::Avx512) detail::bgemm_epilogue_avx512(win, np, wb, e);
        else detail::bgemm_epilogue_avx512bw(win, np, wb, e);
      }
      return;
#endif
    }
    for (int64_t b = 0; b < nblocks; ++b) {
      const uint64_t* wb = conv.blocked.data() + (o0 / detail::kBlock + b) * K * detail::kBlock;
      detail::bgemm(isa, win, np, wb, s.pop.data() + b * detail::kBlock, kChannelChunk);
    }
    int64_t oy = p0 / ow, ox = p0 % ow;
    for (int64_t i = 0; i < np; ++i) {
      const int c = (oy * stride - 1 < 0 ? 1 : 0) | (oy * stride + 1 > h - 1 ? 2 : 0) | (ox * stride - 1 < 0 ? 4 : 0) |
                    (ox * stride + 1 > w - 1 ? 8 : 0);
      int32_t* row = s.pop.data() + i * kChannelChunk;
      if (c == 0) {
        for (int64_t j = 0; j < no; ++j) row[j] = full - 2 * row[j];
      } else {
        const int32_t* corr = conv.correction.data() + c * O + o0;
        for (int64_t j = 0; j < no; ++j) row[j] = full - 2 * row[j] - corr[j];
      }
      if (++ox == ow) ox = 0, ++oy;
    }
    if (fe) {
      const size_t base = static_cast<size_t>((img * opix + p0) * fe->ld + o0);
      detail::conv_epilogue(isa, s.pop.data(), kChannelChunk, np, no, fe->alpha + o0, fe->slope + o0, fe->add ? fe->add + base : nullptr,
                            fe->ld, fe->out + base, fe->ld);
    } else {
      (*epilogue)(img, p0, np, o0, no, s.pop.data(), kChannelChunk);
    }
  });
}

}  // namespace

void run_binary_conv(const BinaryConv& conv, const uint64_t* padded, int64_t n, int64_t h, int64_t w, int stride, Isa isa,
                     ThreadPool& pool, const ConvEpilogue& epilogue) {
  run_conv(conv, padded, n, h, w, stride, isa, pool, &epilogue, nullptr);
}

void run_binary_conv(const BinaryConv& conv, const uint64_t* padded, int64_t n, int64_t h, int64_t w, int stride, Isa isa,
                     ThreadPool& pool, const FloatEpilogue& epilogue) {
  run_conv(conv, padded, n, h, w, stride, isa, pool, nullptr, &epilogue);
}

void pack_activations(const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out, Isa isa) {
  const int64_t words = words_for(C);
  detail::pack_rows(resolve_isa(isa), x, pixels, C, sgn, thr, out, words, words);
}

namespace {

std::vector<uint64_t> pad_packed(const uint64_t* act, int64_t n, int64_t h, int64_t w, int64_t words) {
  std::vector<uint64_t> padded(static_cast<size_t>(n * (h + 2) * (w + 2) * words), 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t y = 0; y < h; ++y) {
      std::memcpy(padded.data() + ((i * (h + 2) + y + 1) * (w + 2) + 1) * words, act + ((i * h + y) * w) * words,
                  static_cast<size_t>(w * words) * 8);
    }
  }
  return padded;
}

}  // namespace

void binary_conv3x3_sums(const uint64_t* act, int64_t n, int64_t h, int64_t w, int64_t in_channels, const uint64_t* weights,
                         int64_t out_channels, int stride, int32_t* sums, int threads, Isa isa) {
  if (n < 1 || h < 1 || w < 1) fail(ErrorKind::InvalidArgument, "binary conv: empty input");
  const Isa chosen = resolve_isa(isa);
  BinaryConv conv;
  conv.init(weights, in_channels, out_channels);
  const std::vector<uint64_t> padded = pad_packed(act, n, h, w, conv.words);
  const int64_t oh = conv_out_size(h, stride), ow = conv_out_size(w, stride);
  ThreadPool pool(std::max(1, threads));
  run_binary_conv(conv, padded.data(), n, h, w, stride, chosen, pool,
                  [&](int64_t img, int64_t p0, int64_t np, int64_t o0, int64_t no, const int32_t* s, int64_t lds) {
                    for (int64_t i = 0; i < np; ++i) {
                      std::memcpy(sums + ((img * oh * ow) + p0 + i) * out_channels + o0, s + i * lds, static_cast<size_t>(no) * 4);
                    }
                  });
}

BenchResult bench_binary_conv(int64_t in_channels, int64_t out_channels, int64_t h, int64_t w, int stride, int64_t batch,
                              int threads, Isa isa, int iterations) {
  if (in_channels < 1 || out_channels < 1 || h < 1 || w < 1 || batch < 1 || iterations < 1 || threads < 1 ||
      (stride != 1 && stride != 2)) {
    fail(ErrorKind::InvalidArgument, "benchConv: sizes, batch, threads and iterations must be positive and stride 1 or 2");
  }
  if (in_channels * h * w * batch > (int64_t{1} << 30) || out_channels * h * w * batch > (int64_t{1} << 30)) {
    fail(ErrorKind::InvalidArgument, "benchConv: shape too large");
  }
  const Isa chosen = resolve_isa(isa);
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal;
  const int64_t words = words_for(in_channels);
  std::vector<float> x(static_cast<size_t>(batch * h * w * in_channels));
  for (auto& v : x) v = normal(rng);
  std::vector<uint64_t> bits(static_cast<size_t>(out_channels * 9 * words), 0);
  for (int64_t o = 0; o < out_channels * 9; ++o) {
    for (int64_t c = 0; c < in_channels; ++c) {
      if (rng() & 1) bits[static_cast<size_t>(o * words + c / 64)] |= uint64_t{1} << (c % 64);
    }
  }
  BinaryConv conv;
  conv.init(bits.data(), in_channels, out_channels);
  std::vector<float> sgn(static_cast<size_t>(in_channels), 1.f), thr(static_cast<size_t>(in_channels), 0.f);
  std::vector<float> alpha(static_cast<size_t>(out_channels), 0.01f), slope(static_cast<size_t>(out_channels), 1.f);
  const int64_t oh = conv_out_size(h, stride), ow = conv_out_size(w, stride);
  std::vector<uint64_t> padded(static_cast<size_t>(batch * (h + 2) * (w + 2) * words), 0);
  std::vector<float> y(static_cast<size_t>(batch * oh * ow * out_channels));
  ThreadPool pool(threads);
  auto once = [&] {
    pool.parallel_for(batch * h, [&](int64_t row, int) {
      const int64_t img = row / h, yy = row % h;
      detail::pack_rows(chosen, x.data() + row * w * in_channels, w, in_channels, sgn.data(), thr.data(),
                        padded.data() + ((img * (h + 2) + yy + 1) * (w + 2) + 1) * words, words, words);
    });
    // The model's float epilogue, as a plain conv layer: alpha * sum (slope 1: PReLU is the identity).
    run_binary_conv(conv, padded.data(), batch, h, w, stride, chosen, pool, FloatEpilogue{alpha.data(), slope.data(), nullptr, y.data(), out_channels});  };
  once();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) once();
  const auto t1 = std::chrono::steady_clock::now();
  return BenchResult{std::chrono::duration<double>(t1 - t0).count() / iterations, chosen};
}

}  // namespace bnn::infer
