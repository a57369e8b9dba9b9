// Exactness tests of native/infer, run on every instruction set this CPU supports, one by one:
//   - activation packing against a naive bit loop;
//   - each binary 3x3 conv's integer sums against a plain +-1 integer convolution with zero
//     padding (random shapes, strides 1 and 2, odd sizes, channel counts around the word size);
//   - the BatchNorm -> threshold fold (positive, negative and zero scales) against BN(x) >= 0;
//   - whole tiny models (both stems, double-skip and classic blocks) against a naive double
//     precision reference of the float network written here independently of the engine;
//   - thread-count determinism, the thread pool (each index once, ranges stolen, errors, overlapping
//     predict calls on one model), refusals of the export, and the safetensors reader's checks.
// Prints one summary line; exits non-zero on any failure.
//   test_infer [--quick]
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <atomic>
#include <chrono>

#include "core/errors.h"
#include "infer/binary_conv.h"
#include "infer/isa.h"
#include "infer/model.h"
#include "infer/safetensors.h"

using namespace bnn::infer;

namespace {

int passed = 0, failed = 0;
std::mt19937_64 rng(20261127);

void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    if (failed < 30) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

template <class F>
void expect_error(const std::string& what, const std::string& needle, F&& body) {
  try {
    body();
    check(false, what + ": no error");
  } catch (const bnn::Error& e) {
    check(std::string(e.what()).find(needle) != std::string::npos, what + ": message '" + e.what() + "' lacks '" + needle + "'");
  } catch (const std::exception& e) {
    check(false, what + ": non-bnn exception " + e.what());
  }
}

int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
double normal() { return std::normal_distribution<double>(0, 1)(rng); }

// ---- packing ----------------------------------------------------------------------------------
void test_packing(Isa isa) {
  for (int64_t C : {1, 3, 15, 16, 17, 63, 64, 65, 127, 130, 200}) {
    const int64_t pixels = uniform(1, 7), words = words_for(C);
    std::vector<float> x(static_cast<size_t>(pixels * C)), sgn(static_cast<size_t>(C)), thr(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) {
      SignFold f;
      f.mode = static_cast<uint8_t>(uniform(0, 3));
      f.threshold = static_cast<float>(normal());
      sign_compare_form(f, &sgn[static_cast<size_t>(c)], &thr[static_cast<size_t>(c)]);
    }
    for (auto& v : x) v = uniform(0, 9) == 0 ? 0.f : static_cast<float>(normal());
    // Values exactly at thresholds: the tie must go to +1 in modes 0 and 1.
    for (int64_t c = 0; c < C; c += 3) x[static_cast<size_t>(c)] = sgn[static_cast<size_t>(c)] * thr[static_cast<size_t>(c)];
    std::vector<uint64_t> got(static_cast<size_t>(pixels * words), ~uint64_t{0});
    pack_activations(x.data(), pixels, C, sgn.data(), thr.data(), got.data(), isa);
    bool ok = true;
    for (int64_t p = 0; p < pixels; ++p) {
      for (int64_t c = 0; c < words * 64; ++c) {
        const bool bit = (got[static_cast<size_t>(p * words + c / 64)] >> (c % 64)) & 1;
        bool want = false;
        if (c < C) want = sgn[static_cast<size_t>(c)] * x[static_cast<size_t>(p * C + c)] < thr[static_cast<size_t>(c)];
        ok = ok && bit == want;
      }
    }
    check(ok, std::string("packing C=") + std::to_string(C) + " on " + isa_name(isa));
  }
}

// ---- binary conv ------------------------------------------------------------------------------
void test_conv(Isa isa, int cases) {
  const int64_t channel_counts[] = {1, 3, 63, 64, 65, 127, 128, 130, 191, 257};
  for (int t = 0; t < cases + 4; ++t) {
    // A third of the cases are wide (up to 53 columns): outputs at least 16 wide read their windows
    // straight from the padded input, in one or two 48-output segments per row; narrower ones go
    // through the im2col copy. Both must give the same exact sums.
    const bool wide = t % 3 == 0;
    // The last four saturate the byte counters of the AVX2 and avx512bw kernels: every activation
    // -1 and every weight +1, so each word's XOR has all its bits set (8 per byte), over 63 to 99
    // window words, past one and two of the flushes every 31 words.
    const bool saturate = t >= cases;
    int64_t C = channel_counts[uniform(0, wide ? 7 : 9)], O = uniform(1, 3) == 1 ? uniform(1, 40) : 16 * uniform(1, wide ? 2 : 5);
    int64_t n = uniform(1, 2), h = wide ? uniform(1, 5) : uniform(1, 11), w = wide ? uniform(16, 53) : uniform(1, 11);
    if (saturate) C = t % 2 ? 1344 : 2100, O = 16 * (1 + t % 2), n = 1, h = 3, w = wide ? 17 : 4;
    const int stride = static_cast<int>(uniform(1, 2));
    const int threads = static_cast<int>(uniform(1, 3));
    const int64_t words = words_for(C);
    std::vector<int8_t> a(static_cast<size_t>(n * h * w * C)), wt(static_cast<size_t>(O * 9 * C));
    for (auto& v : a) v = saturate ? -1 : ((rng() & 1) ? -1 : 1);
    for (auto& v : wt) v = saturate ? 1 : ((rng() % 3 == 0) ? -1 : 1);
    std::vector<uint64_t> ap(static_cast<size_t>(n * h * w * words), 0), wp(static_cast<size_t>(O * 9 * words), 0);
    for (int64_t p = 0; p < n * h * w; ++p)
      for (int64_t c = 0; c < C; ++c)
        if (a[static_cast<size_t>(p * C + c)] < 0) ap[static_cast<size_t>(p * words + c / 64)] |= uint64_t{1} << (c % 64);
    for (int64_t q = 0; q < O * 9; ++q)
      for (int64_t c = 0; c < C; ++c)
        if (wt[static_cast<size_t>(q * C + c)] < 0) wp[static_cast<size_t>(q * words + c / 64)] |= uint64_t{1} << (c % 64);
    const int64_t oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1;
    std::vector<int32_t> got(static_cast<size_t>(n * oh * ow * O), 12345);
    binary_conv3x3_sums(ap.data(), n, h, w, C, wp.data(), O, stride, got.data(), threads, isa);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; ++i)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox)
          for (int64_t o = 0; o < O; ++o) {
            int32_t sum = 0;
            for (int64_t kh = 0; kh < 3; ++kh)
              for (int64_t kw = 0; kw < 3; ++kw) {
                const int64_t iy = oy * stride - 1 + kh, ix = ox * stride - 1 + kw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;  // zero padding
                for (int64_t c = 0; c < C; ++c)
                  sum += a[static_cast<size_t>(((i * h + iy) * w + ix) * C + c)] * wt[static_cast<size_t>((o * 9 + kh * 3 + kw) * C + c)];
              }
            if (got[static_cast<size_t>(((i * oh + oy) * ow + ox) * O + o)] != sum) ok = false;
          }
    const std::string shape = "C=" + std::to_string(C) + " O=" + std::to_string(O) + " n=" + std::to_string(n) + " h=" + std::to_string(h) +
                              " w=" + std::to_string(w) + " stride=" + std::to_string(stride) + " threads=" + std::to_string(threads) + " on " +
                              isa_name(isa);
    check(ok, "conv " + shape);
    // The float layer output (fused into the popcount kernel on AVX-512) from the verified sums:
    // prelu(alpha * sum + add), a multiply then an add, bit for bit, with and without the add.
    std::vector<uint64_t> padded(static_cast<size_t>(n * (h + 2) * (w + 2) * words), 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t y = 0; y < h; ++y)
        std::memcpy(padded.data() + ((i * (h + 2) + y + 1) * (w + 2) + 1) * words, ap.data() + (i * h + y) * w * words,
                    static_cast<size_t>(w * words) * 8);
    BinaryConv conv;
    conv.init(wp.data(), C, O);
    std::vector<float> alpha(static_cast<size_t>(O)), slope(static_cast<size_t>(O));
    for (auto& v : alpha) v = static_cast<float>(0.01 + 0.1 * std::fabs(normal()));
    for (auto& v : slope) v = static_cast<float>(0.25 * normal());
    const int64_t ld = O + (t % 2);  // a row stride wider than O, sometimes
    std::vector<float> add(static_cast<size_t>(n * oh * ow * ld));
    for (auto& v : add) v = static_cast<float>(normal());
    ThreadPool pool(threads);
    for (const bool with_add : {false, true}) {
      std::vector<float> out(add.size(), -7.f);
      run_binary_conv(conv, padded.data(), n, h, w, stride, isa, pool, FloatEpilogue{alpha.data(), slope.data(), with_add ? add.data() : nullptr, out.data(), ld});
      bool same = true;
      for (int64_t q = 0; q < n * oh * ow && same; ++q)
        for (int64_t o = 0; o < ld; ++o) {
          const size_t at = static_cast<size_t>(q * ld + o);
          if (o >= O) {
            same = same && out[at] == -7.f;  // padding columns untouched
            continue;
          }
          volatile float v = alpha[static_cast<size_t>(o)] * static_cast<float>(got[static_cast<size_t>(q * O + o)]);
          if (with_add) v = v + add[at];
          volatile float sv = slope[static_cast<size_t>(o)] * v;
          const float want = v > 0.f ? v : sv;
          same = same && std::memcmp(&want, &out[at], 4) == 0;
        }
      check(same, std::string("float epilogue") + (with_add ? " with add " : " ") + shape);
    }
  }
}

// ---- BN fold ----------------------------------------------------------------------------------
// LibTorch's float32 eval BatchNorm, as ATen computes it (a multiply, then an add).
// With RSign's learned threshold: sign(BN(x) - shift), the subtraction rounded to float as well.
bool torch_bn_nonneg(float x, float w, float b, float m, float v, float shift = 0.f) {
  volatile float invstd = 1.f / std::sqrt(v + 1e-5f);
  volatile float a = invstd * w;
  volatile float ma = m * a;
  volatile float beta = b - ma;
  volatile float p = x * a;
  volatile float y = p + beta;
  volatile float d = y - shift;
  return d >= 0.f;
}

void test_fold() {
  int bad = 0, bad_exact = 0;
  for (int t = 0; t < 4000; ++t) {
    const int kind = t % 4;
    const float weight = static_cast<float>(kind == 3 ? 0.0 : (kind == 1 ? -1 : 1) * std::exp(normal()));
    const float bias = static_cast<float>(normal()), mean = static_cast<float>(normal()), var = static_cast<float>(std::exp(normal()));
    // Every other case carries an RSign threshold (tiny ones too, where y - shift rounds hardest).
    const float shift = t % 2 == 0 ? 0.f : static_cast<float>((t % 8 == 1 ? 1e-6 : 0.5) * normal());
    const SignFold f = fold_sign(weight, bias, mean, var, 1e-5, shift);
    float s, th;
    sign_compare_form(f, &s, &th);
    auto folded = [&](float x) { return !(s * x < th); };  // +1
    std::vector<float> xs;
    for (int i = 0; i < 40; ++i) xs.push_back(static_cast<float>(normal() * 3));
    xs.push_back(0.f);
    xs.push_back(-0.f);
    if (f.mode < 2) {
      float x = f.threshold;
      for (int i = 0; i < 4; ++i) x = std::nextafter(x, -INFINITY);
      for (int i = 0; i < 9; ++i, x = std::nextafter(x, INFINITY)) xs.push_back(x);  // around the boundary
    }
    for (float x : xs) {
      if (folded(x) != torch_bn_nonneg(x, weight, bias, mean, var, shift)) ++bad;
      // And against exact arithmetic, away from float rounding of the crossing itself.
      const double scale = weight / std::sqrt(static_cast<double>(var) + 1e-5);
      const double exact = (static_cast<double>(x) - mean) * scale + bias - shift;
      if (std::fabs(exact) > 1e-5 * (std::fabs(bias) + std::fabs(scale * x) + std::fabs(scale * mean) + std::fabs(shift)) && folded(x) != (exact >= 0)) ++bad_exact;
    }
    if (kind == 3) check(f.mode == (bias >= shift ? 2 : 3), "fold of a zero scale is a constant");
    if (kind == 1) check(f.mode == 1, "fold of a negative scale flips");
    if (kind == 0) check(f.mode == 0, "fold of a positive scale");
  }
  check(bad == 0, "fold: x >= threshold <=> LibTorch's float BN(x) - shift >= 0 (" + std::to_string(bad) + " mismatches)");
  check(bad_exact == 0, "fold agrees with exact BN away from the crossing (" + std::to_string(bad_exact) + " mismatches)");
  const SignFold f = fold_sign(2.0, -1.0, 0.0, 1.0 - 1e-5);  // BN(x) = 2x - 1: crossing at 0.5
  check(f.mode == 0 && f.threshold == 0.5f, "fold threshold of 2x - 1 is 0.5");
  const SignFold g = fold_sign(2.0, -1.0, 0.0, 1.0 - 1e-5, 1e-5, 1.f);  // 2x - 1 >= 1: x >= 1
  check(g.mode == 0 && g.threshold == 1.f, "fold threshold of 2x - 1 with RSign threshold 1 is 1");
  expect_error("non-finite RSign threshold", "not finite", [] { fold_sign(1.0, 0.0, 0.0, 1.0, 1e-5, NAN); });
}

// ---- a naive float reference of the network (NCHW, double) -------------------------------------
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> v;
};

struct FloatModel {
  Config cfg;
  std::map<std::string, Tensor> p;
  const Tensor& at(const std::string& k) const { return p.at(k); }
};

using Act = std::vector<double>;  // [C][H][W] for one image
struct Shape3 {
  int64_t c, h, w;
};

Act conv2d(const Act& x, Shape3 s, const std::vector<double>& w, int64_t O, int64_t k, int64_t stride, int64_t pad, Shape3& os) {
  os = {O, (s.h + 2 * pad - k) / stride + 1, (s.w + 2 * pad - k) / stride + 1};
  Act y(static_cast<size_t>(os.c * os.h * os.w), 0.0);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t oy = 0; oy < os.h; ++oy)
      for (int64_t ox = 0; ox < os.w; ++ox) {
        double sum = 0;
        for (int64_t c = 0; c < s.c; ++c)
          for (int64_t kh = 0; kh < k; ++kh)
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t iy = oy * stride - pad + kh, ix = ox * stride - pad + kw;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              sum += x[static_cast<size_t>((c * s.h + iy) * s.w + ix)] * w[static_cast<size_t>(((o * s.c + c) * k + kh) * k + kw)];
            }
        y[static_cast<size_t>((o * os.h + oy) * os.w + ox)] = sum;
      }
  return y;
}

void bn(Act& x, Shape3 s, const FloatModel& m, const std::string& p) {
  for (int64_t c = 0; c < s.c; ++c) {
    const double g = m.at(p + ".weight").v[static_cast<size_t>(c)], b = m.at(p + ".bias").v[static_cast<size_t>(c)];
    const double mu = m.at(p + ".running_mean").v[static_cast<size_t>(c)], var = m.at(p + ".running_var").v[static_cast<size_t>(c)];
    for (int64_t i = 0; i < s.h * s.w; ++i) {
      double& v = x[static_cast<size_t>(c * s.h * s.w + i)];
      v = (v - mu) / std::sqrt(var + 1e-5) * g + b;
    }
  }
}

std::vector<double> binary_weight(const Tensor& w) {
  const int64_t O = w.shape[0], per = static_cast<int64_t>(w.v.size()) / O;
  std::vector<double> out(w.v.size());
  for (int64_t o = 0; o < O; ++o) {
    double a = 0;
    for (int64_t i = 0; i < per; ++i) a += std::fabs(static_cast<float>(w.v[static_cast<size_t>(o * per + i)]));
    a /= static_cast<double>(per);
    for (int64_t i = 0; i < per; ++i) out[static_cast<size_t>(o * per + i)] = w.v[static_cast<size_t>(o * per + i)] >= 0 ? a : -a;
  }
  return out;
}

Act sign_conv(const Act& x, Shape3 s, const FloatModel& m, const std::string& bnp, const std::string& convp, int64_t O, int64_t stride, Shape3& os) {
  Act t = x;
  bn(t, s, m, bnp);
  for (auto& v : t) v = v >= 0 ? 1.0 : -1.0;
  return conv2d(t, s, binary_weight(m.at(convp + ".weight")), O, 3, stride, 1, os);
}

void prelu(Act& x, Shape3 s, const Tensor& a) {
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t i = 0; i < s.h * s.w; ++i) {
      double& v = x[static_cast<size_t>(c * s.h * s.w + i)];
      if (!(v > 0)) v *= a.v[static_cast<size_t>(c)];
    }
}

std::vector<double> reference(const FloatModel& m, const std::vector<float>& img, int64_t H, int64_t W) {
  const Config& cfg = m.cfg;
  Act x(img.begin(), img.end());
  Shape3 s{cfg.in_channels, H, W}, os;
  const bool big = cfg.stem == "imagenet";
  x = conv2d(x, s, m.at("conv1.weight").v, cfg.width, big ? 7 : 3, big ? 2 : 1, big ? 3 : 1, os);
  s = os;
  bn(x, s, m, "bn1");
  for (auto& v : x) v = std::max(v, 0.0);
  if (big) {
    Shape3 ps{s.c, (s.h + 2 - 3) / 2 + 1, (s.w + 2 - 3) / 2 + 1};
    Act y(static_cast<size_t>(ps.c * ps.h * ps.w), -INFINITY);
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t oy = 0; oy < ps.h; ++oy)
        for (int64_t ox = 0; ox < ps.w; ++ox)
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              double& d = y[static_cast<size_t>((c * ps.h + oy) * ps.w + ox)];
              d = std::max(d, x[static_cast<size_t>((c * s.h + iy) * s.w + ix)]);
            }
    x = y;
    s = ps;
  }
  for (const BlockSpec& b : block_specs(cfg)) {
    Act sc = x;
    Shape3 ss = s;
    if (b.downsample) {
      const Tensor& w = m.at(b.prefix + ".downsample.0.weight");
      sc = conv2d(x, s, w.v, b.out, 1, 1, 0, ss);
      bn(sc, ss, m, b.prefix + ".downsample.1");
      if (b.stride != 1) {
        const int64_t k = b.stride;
        Shape3 ps{ss.c, (ss.h + k - 1) / k, (ss.w + k - 1) / k};
        Act y(static_cast<size_t>(ps.c * ps.h * ps.w), 0.0);
        for (int64_t c = 0; c < ps.c; ++c)
          for (int64_t oy = 0; oy < ps.h; ++oy)
            for (int64_t ox = 0; ox < ps.w; ++ox) {
              double sum = 0;
              int count = 0;
              for (int64_t iy = oy * k; iy < std::min(oy * k + k, ss.h); ++iy)
                for (int64_t ix = ox * k; ix < std::min(ox * k + k, ss.w); ++ix, ++count) sum += sc[static_cast<size_t>((c * ss.h + iy) * ss.w + ix)];
              y[static_cast<size_t>((c * ps.h + oy) * ps.w + ox)] = sum / count;
            }
        sc = y;
        ss = ps;
      }
    }
    Act out;
    if (cfg.double_skip) {
      out = sign_conv(x, s, m, b.prefix + ".bn", b.prefix + ".conv", b.out, b.stride, os);
      for (size_t i = 0; i < out.size(); ++i) out[i] += sc[i];
      prelu(out, os, m.at(b.prefix + ".prelu.weight"));
    } else {
      Act mid = sign_conv(x, s, m, b.prefix + ".bn1", b.prefix + ".conv1", b.out, b.stride, os);
      prelu(mid, os, m.at(b.prefix + ".prelu1.weight"));
      Shape3 ms = os;
      out = sign_conv(mid, ms, m, b.prefix + ".bn2", b.prefix + ".conv2", b.out, 1, os);
      for (size_t i = 0; i < out.size(); ++i) out[i] += sc[i];
      prelu(out, os, m.at(b.prefix + ".prelu2.weight"));
    }
    x = out;
    s = os;
  }
  std::vector<double> feat(static_cast<size_t>(s.c), 0.0);
  for (int64_t c = 0; c < s.c; ++c) {
    for (int64_t i = 0; i < s.h * s.w; ++i) feat[static_cast<size_t>(c)] += x[static_cast<size_t>(c * s.h * s.w + i)];
    feat[static_cast<size_t>(c)] /= static_cast<double>(s.h * s.w);
  }
  std::vector<double> logits(static_cast<size_t>(cfg.num_classes));
  const Tensor& fw = m.at("fc.weight");
  for (int64_t o = 0; o < cfg.num_classes; ++o) {
    double sum = m.at("fc.bias").v[static_cast<size_t>(o)];
    for (int64_t c = 0; c < s.c; ++c) sum += fw.v[static_cast<size_t>(o * s.c + c)] * feat[static_cast<size_t>(c)];
    logits[static_cast<size_t>(o)] = sum;
  }
  return logits;
}

// Random float model, written as training writes it; values held as float-rounded doubles.
FloatModel random_model(const Config& cfg, const std::string& path) {
  FloatModel m;
  m.cfg = cfg;
  std::vector<TensorData> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, const std::function<double()>& gen) {
    int64_t numel = 1;
    for (auto d : shape) numel *= d;
    Tensor t{shape, {}};
    std::vector<float> f(static_cast<size_t>(numel));
    for (auto& v : f) v = static_cast<float>(gen());
    t.v.assign(f.begin(), f.end());
    m.p[name] = t;
    tensors.push_back(make_f32(name, shape, f));
  };
  auto add_bn = [&](const std::string& p, int64_t n) {
    add(p + ".weight", {n}, [] { return uniform(0, 19) == 0 ? 0.0 : normal(); });  // some zero and negative scales
    add(p + ".bias", {n}, [] { return 0.5 * normal(); });
    add(p + ".running_mean", {n}, [] { return 0.5 * normal(); });
    add(p + ".running_var", {n}, [] { return std::exp(0.5 * normal()); });
  };
  const int64_t k = cfg.stem == "imagenet" ? 7 : 3;
  add("conv1.weight", {cfg.width, cfg.in_channels, k, k}, [] { return 0.3 * normal(); });
  add_bn("bn1", cfg.width);
  for (const BlockSpec& b : block_specs(cfg)) {
    auto conv = [&](const std::string& p, int64_t in) { add(p + ".weight", {b.out, in, 3, 3}, [] { return 0.1 * normal(); }); };
    auto pre = [&](const std::string& p) { add(p + ".weight", {b.out}, [] { return 0.25 + 0.1 * normal(); }); };
    if (cfg.double_skip) {
      add_bn(b.prefix + ".bn", b.in);
      conv(b.prefix + ".conv", b.in);
      pre(b.prefix + ".prelu");
    } else {
      add_bn(b.prefix + ".bn1", b.in);
      conv(b.prefix + ".conv1", b.in);
      pre(b.prefix + ".prelu1");
      add_bn(b.prefix + ".bn2", b.out);
      conv(b.prefix + ".conv2", b.out);
      pre(b.prefix + ".prelu2");
    }
    if (b.downsample) {
      add(b.prefix + ".downsample.0.weight", {b.out, b.in, 1, 1}, [] { return 0.3 * normal(); });
      add_bn(b.prefix + ".downsample.1", b.out);
    }
  }
  add("fc.weight", {cfg.num_classes, 8 * cfg.width}, [] { return 0.3 * normal(); });
  add("fc.bias", {cfg.num_classes}, [] { return 0.1 * normal(); });
  write_safetensors(path, tensors, {{"bnn_torch.config", cfg.to_json()}, {"format", "pt"}});
  return m;
}

std::string tmp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/bnn-infer-test-" + std::to_string(::getpid()) + "-" + name;
}

void test_models(const std::vector<Isa>& isas, bool quick) {
  struct Case {
    const char* stem;
    bool double_skip;
    int64_t width, in, classes, h, w, n;
  };
  std::vector<Case> cases = {{"small", true, 3, 2, 5, 11, 9, 2}, {"small", false, 5, 1, 4, 8, 8, 2},
                             {"imagenet", true, 4, 3, 3, 37, 29, 1}, {"small", true, 16, 1, 10, 28, 28, 2}};
  if (!quick) cases.push_back({"imagenet", false, 9, 3, 7, 45, 51, 2});
  for (size_t index = 0; index < cases.size(); ++index) {
    const Case& c = cases[index];
    // Each case draws from its own seed: the tests before this one draw once per ISA, so with the
    // shared stream the models would depend on which ISAs the CPU has, and a model whose sign
    // input lands within float rounding of a threshold (where the float engine and the double
    // reference may disagree by design) could appear on one machine and not another.
    rng.seed(20261128 + index);
    Config cfg;
    cfg.stem = c.stem;
    cfg.double_skip = c.double_skip;
    cfg.width = c.width;
    cfg.in_channels = c.in;
    cfg.num_classes = c.classes;
    const std::string fpath = tmp_path("float.safetensors"), ppath = tmp_path("packed.safetensors");
    const FloatModel fm = random_model(cfg, fpath);
    ExportOptions opts;
    opts.metadata["mean"] = "[0.5]";
    opts.metadata["classNames"] = "[\"a\",\"b\"]";
    const ExportResult r = export_packed(fpath, ppath, opts);
    check(r.packed_bytes > 0 && r.float_bytes > r.packed_bytes, "export sizes");
    const auto model = Model::load(ppath);
    check(model->metadata().at("classNames") == "[\"a\",\"b\"]" && model->metadata().count("bnn_infer.format") == 0, "metadata round trip");
    std::vector<float> img(static_cast<size_t>(c.n * c.in * c.h * c.w));
    for (auto& v : img) v = static_cast<float>(normal());
    std::vector<std::vector<double>> refs;
    for (int64_t i = 0; i < c.n; ++i) {
      std::vector<float> one(img.begin() + i * c.in * c.h * c.w, img.begin() + (i + 1) * c.in * c.h * c.w);
      refs.push_back(reference(fm, one, c.h, c.w));
    }
    std::vector<float> first;
    for (Isa isa : isas) {
      for (int threads : {1, 3}) {
        std::vector<float> logits(static_cast<size_t>(c.n * c.classes));
        model->predict(img.data(), c.n, c.in, c.h, c.w, logits.data(), threads, isa);
        double worst = 0, scale = 1e-3;
        for (const auto& r1 : refs)
          for (double v : r1) scale = std::max(scale, std::fabs(v));
        for (int64_t i = 0; i < c.n; ++i)
          for (int64_t o = 0; o < c.classes; ++o)
            worst = std::max(worst, std::fabs(logits[static_cast<size_t>(i * c.classes + o)] - refs[static_cast<size_t>(i)][static_cast<size_t>(o)]) / scale);
        char buf[256];
        std::snprintf(buf, sizeof buf, "model %s doubleSkip=%d width=%lld on %s threads=%d: max relative logit error %.3g", c.stem,
                      c.double_skip, static_cast<long long>(c.width), isa_name(isa), threads, worst);
        check(worst < 1e-4, buf);
        if (first.empty()) first = logits;
        if (threads == 3) {
          // Same ISA, other thread count: bit-identical.
          std::vector<float> one(logits.size());
          model->predict(img.data(), c.n, c.in, c.h, c.w, one.data(), 1, isa);
          check(std::memcmp(one.data(), logits.data(), logits.size() * 4) == 0, std::string("deterministic across threads on ") + isa_name(isa));
        }
      }
    }
    expect_error("wrong channels", "inChannels", [&] { model->predict(img.data(), 1, c.in + 1, c.h, c.w, nullptr, 1); });
    std::remove(fpath.c_str());
    std::remove(ppath.c_str());
  }
}

// ---- the thread pool ----------------------------------------------------------------------------
void test_thread_pool() {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    bool once = true, slots_ok = true;
    for (int rep = 0; rep < 300; ++rep) {
      for (int64_t count : {0, 1, 2, 3, 7, 100, 1001}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(count));
        pool.parallel_for(count, [&](int64_t i, int slot) {
          if (slot < 0 || slot >= threads) slots_ok = false;
          seen[static_cast<size_t>(i)].fetch_add(1);
        });
        for (auto& v : seen) once = once && v.load() == 1;
      }
    }
    check(once, "thread pool: every index exactly once, threads=" + std::to_string(threads));
    check(slots_ok, "thread pool: slots in range, threads=" + std::to_string(threads));
    // An exception stops the job, reaches the caller, and leaves the pool usable.
    bool thrown = false;
    try {
      pool.parallel_for(64, [&](int64_t i, int) {
        if (i == 37) throw std::runtime_error("index 37");
      });
    } catch (const std::runtime_error& e) {
      thrown = std::string(e.what()) == "index 37";
    }
    check(thrown, "thread pool: the job's exception is rethrown, threads=" + std::to_string(threads));
    std::atomic<int64_t> sum{0};
    pool.parallel_for(100, [&](int64_t i, int) { sum += i; });
    check(sum.load() == 4950, "thread pool: usable after an exception, threads=" + std::to_string(threads));
  }
  {
    // Slot 0's own range is slow: the worker, done with its range, takes the rest of slot 0's.
    ThreadPool pool(2);
    std::vector<int> ran_by(8, -1);
    pool.parallel_for(8, [&](int64_t i, int slot) {
      ran_by[static_cast<size_t>(i)] = slot;
      if (slot == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    });
    bool stolen = false;
    for (int i = 0; i < 4; ++i) stolen = stolen || ran_by[static_cast<size_t>(i)] == 1;
    check(stolen, "thread pool: an idle thread takes indices from a slow thread's range");
    // Ranges: with no delay, each thread starts on its own contiguous range.
    std::vector<int> first(2, -1);
    pool.parallel_for(2, [&](int64_t i, int slot) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      first[static_cast<size_t>(i)] = slot;
    });
    check(first[0] == 0 && first[1] == 1, "thread pool: index ranges start on their own threads");
  }
}

// Predict calls that overlap on one model (the addon runs them on libuv's threads) agree with
// serial ones bit for bit, whether they get the model's kept pool or one of their own.
void test_overlapping_predicts() {
  Config cfg;
  cfg.width = 8;
  cfg.in_channels = 1;
  cfg.num_classes = 4;
  const std::string fpath = tmp_path("ov.safetensors"), ppath = tmp_path("ovp.safetensors");
  random_model(cfg, fpath);
  export_packed(fpath, ppath, ExportOptions{});
  const auto model = Model::load(ppath);
  const int64_t n = 3, h = 12, w = 12;
  std::vector<float> img(static_cast<size_t>(n * h * w));
  for (auto& v : img) v = static_cast<float>(normal());
  std::vector<float> expect(static_cast<size_t>(n * cfg.num_classes));
  model->predict(img.data(), n, 1, h, w, expect.data(), 1);
  std::atomic<bool> same{true};
  auto run = [&](int threads) {
    std::vector<float> got(expect.size());
    for (int i = 0; i < 40; ++i) {
      model->predict(img.data(), n, 1, h, w, got.data(), threads);
      if (std::memcmp(got.data(), expect.data(), got.size() * 4) != 0) same = false;
    }
  };
  std::thread a(run, 2), b(run, 3);
  run(2);
  a.join();
  b.join();
  check(same.load(), "overlapping predict calls on one model match a serial call");
  std::remove(fpath.c_str());
  std::remove(ppath.c_str());
}

void test_refusals() {
  Config cfg;
  cfg.width = 2;
  cfg.in_channels = 1;
  cfg.num_classes = 3;
  const std::string fpath = tmp_path("r.safetensors"), ppath = tmp_path("rp.safetensors");
  cfg.binary_weights = false;
  random_model(cfg, fpath);
  expect_error("stage-1 model refused", "binaryWeights false", [&] { export_packed(fpath, ppath, {}); });
  ExportOptions allow;
  allow.allow_float_weights = true;
  export_packed(fpath, ppath, allow);
  check(Model::load(ppath) != nullptr, "stage-1 model packed when allowed");
  expect_error("float model is not packed", "export it with exportPacked", [&] { Model::load(fpath); });
  cfg.binary_weights = true;
  cfg.binary_activations = false;
  random_model(cfg, fpath);
  expect_error("float activations refused", "binaryActivations false", [&] { export_packed(fpath, ppath, allow); });
  ExportOptions reserved;
  reserved.metadata["bnn_infer.version"] = "9";
  cfg.binary_activations = true;
  random_model(cfg, fpath);
  expect_error("reserved metadata key", "reserved", [&] { export_packed(fpath, ppath, reserved); });
  // Version and truncation checks on a real packed file.
  export_packed(fpath, ppath, {});
  SafeTensors st = SafeTensors::read_file(ppath);
  std::vector<TensorData> ts;
  for (const auto& t : st.tensors()) ts.push_back(TensorData{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.bytes)});
  auto meta = st.metadata();
  meta["bnn_infer.version"] = "2";
  write_safetensors(ppath + "2", ts, meta);
  expect_error("other version refused", "version '2' is not supported", [&] { Model::load(ppath + "2"); });
  meta["bnn_infer.version"] = "1";
  ts.erase(ts.begin() + 3);
  write_safetensors(ppath + "2", ts, meta);
  expect_error("missing tensor named", "is missing", [&] { Model::load(ppath + "2"); });
  std::vector<uint8_t> bytes = serialize_safetensors({make_f32("a", {2}, {1.f, 2.f})}, {});
  bytes.pop_back();
  expect_error("truncated file", "run past the data", [&] { SafeTensors::parse(bytes, "x"); });
  expect_error("header length", "header length", [&] { SafeTensors::parse(std::vector<uint8_t>(16, 0xFF), "x"); });
  std::remove(fpath.c_str());
  std::remove(ppath.c_str());
  std::remove((ppath + "2").c_str());
}

}  // namespace

#if defined(__aarch64__)
constexpr const char* kArch = "aarch64";
#elif defined(__x86_64__)
constexpr const char* kArch = "x86-64";
#else
constexpr const char* kArch = "portable";
#endif

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool quick = mode == "--quick";
  if (mode == "--cap-check") {
    // Run with BNN_CPU_ISA=<isa> (and the ISA expected, if not that one): the automatic choice
    // must be capped to it.
    const char* cap = std::getenv("BNN_CPU_ISA");
    const std::string expected = argc > 2 ? argv[2] : (cap ? cap : "");
    const bool ok = cap && std::string(isa_name(best_isa())) == expected;
    std::printf("infer tests (%s): BNN_CPU_ISA=%s caps the choice to %s: %s\n", kArch, cap ? cap : "(unset)", isa_name(best_isa()), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
  }
  const std::vector<Isa> isas = supported_isas();
  std::string names;
  try {
    test_fold();
    for (Isa isa : isas) {
      names += (names.empty() ? "" : ", ") + std::string(isa_name(isa));
      test_packing(isa);
      test_conv(isa, quick ? 60 : 250);
    }
    test_models(isas, quick);
    test_thread_pool();
    test_overlapping_predicts();
    test_refusals();
    // The environment cap only ever lowers the choice.
    check(isa_supported(best_isa()), "best_isa is supported");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL: uncaught exception: %s\n", e.what());
    ++failed;
  }
  if (failed) {
    std::printf("infer tests (%s): %d FAILED, %d passed on %s (best: %s)\n", kArch, failed, passed, names.c_str(), isa_name(best_isa()));
    return 1;
  }
  std::printf("infer tests (%s): %d passed on %s (best: %s)\n", kArch, passed, names.c_str(), isa_name(best_isa()));
  return 0;
}
