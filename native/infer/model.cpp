#include "infer/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/errors.h"
#include "infer/json.h"
#include "infer/kernels.h"
#include "infer/safetensors.h"

// The float parts (stem conv, 1x1 downsample conv, fc) run through one small register-blocked
// kernel, detail::gemm_acc, compiled per ISA with target attributes. Eigen was the alternative; it
// chooses its SIMD width at compile time from -march flags, which the house rules forbid (one
// binary for every CPU, chosen at run time), and these layers are a few percent of the work.

namespace bnn::infer {

namespace {

[[noreturn]] void io(const std::string& where, const std::string& msg) { fail(ErrorKind::Io, where + ": " + msg); }

const char* kMetaFormat = "bnn_infer.format";
const char* kMetaVersion = "bnn_infer.version";
const char* kMetaConfig = "bnn_torch.config";
bool reserved_key(const std::string& k) { return k.rfind("bnn_infer.", 0) == 0 || k == kMetaConfig || k == "format"; }

std::map<std::string, std::string> format_metadata() {
  return {
      {kMetaFormat, kFormatName},
      {kMetaVersion, std::to_string(kFormatVersion)},
      {"bnn_infer.word_bits", "64"},
      {"bnn_infer.bit_order", "channel c of a pixel is bit c%8 (LSB first) of byte c/8 of the last axis; 8 bytes form one little-endian 64-bit word"},
      {"bnn_infer.bit_one", "-1"},
      {"bnn_infer.channel_padding", "the last axis holds ceil(C/64)*8 bytes; bits of channels >= C are 0"},
      {"bnn_infer.sign_modes", "0: +1 iff x >= threshold; 1: +1 iff x <= threshold; 2: always +1; 3: always -1"},
      {"bnn_infer.spec", "docs/packed-format.md"},
  };
}

}  // namespace

// ---- config ---------------------------------------------------------------------------------

Config Config::parse(const std::string& text, const std::string& where) {
  const json::Value v = json::parse(text, where + " bnn_torch.config");
  if (v.type != json::Value::Type::Object) io(where, "bnn_torch.config is not a JSON object");
  Config c;
  auto integer = [&](const char* key, int64_t max) {
    const json::Value* x = v.find(key);
    if (!x || x->type != json::Value::Type::Number || !x->integral || x->integer < 1 || x->integer > max) {
      io(where, std::string("bnn_torch.config.") + key + " must be an integer between 1 and " + std::to_string(max));
    }
    return x->integer;
  };
  auto boolean = [&](const char* key, bool fallback) {
    const json::Value* x = v.find(key);
    if (!x) return fallback;
    if (x->type != json::Value::Type::Bool) io(where, std::string("bnn_torch.config.") + key + " must be a boolean");
    return x->boolean;
  };
  if (const json::Value* a = v.find("arch")) {
    if (a->type != json::Value::Type::String) io(where, "bnn_torch.config.arch must be a string");
    c.arch = a->string;
  }
  if (c.arch != "resnet18") io(where, "bnn_torch.config.arch '" + c.arch + "' is not supported (resnet18 only)");
  c.num_classes = integer("numClasses", 1 << 20);
  c.in_channels = integer("inChannels", 4096);
  c.width = integer("width", 4096);
  const json::Value* stem = v.find("stem");
  if (!stem || stem->type != json::Value::Type::String || (stem->string != "small" && stem->string != "imagenet")) {
    io(where, "bnn_torch.config.stem must be 'small' or 'imagenet'");
  }
  c.stem = stem->string;
  c.double_skip = boolean("doubleSkip", true);
  c.learnable_thresholds = boolean("learnableThresholds", false);
  c.binary_activations = boolean("binaryActivations", true);
  c.binary_weights = boolean("binaryWeights", true);
  if (const json::Value* m = v.find("bnMomentum"); m && m->type == json::Value::Type::Number) c.bn_momentum = m->number;
  auto string_field = [&](const char* key, std::string& field) {
    const json::Value* x = v.find(key);
    if (!x) return;
    if (x->type != json::Value::Type::String) io(where, std::string("bnn_torch.config.") + key + " must be a string");
    field = x->string;
  };
  string_field("blockOrder", c.block_order);
  string_field("blockActivation", c.block_activation);
  string_field("downsample", c.downsample);
  return c;
}

std::string Config::to_json() const {
  char mom[32];
  std::snprintf(mom, sizeof mom, "%.17g", bn_momentum);
  return std::string("{\"arch\":") + json::quote(arch) + ",\"numClasses\":" + std::to_string(num_classes) +
         ",\"inChannels\":" + std::to_string(in_channels) + ",\"width\":" + std::to_string(width) + ",\"stem\":" + json::quote(stem) +
         ",\"doubleSkip\":" + (double_skip ? "true" : "false") + ",\"binaryActivations\":" + (binary_activations ? "true" : "false") +
         ",\"binaryWeights\":" + (binary_weights ? "true" : "false") + ",\"bnMomentum\":" + mom + "}";
}

std::vector<BlockSpec> block_specs(const Config& c) {
  std::vector<BlockSpec> out;
  int64_t in_planes = c.width;
  for (int layer = 1; layer <= 4; ++layer) {
    const int64_t planes = c.width << (layer - 1);
    const int stride = layer == 1 ? 1 : 2;
    const int count = c.double_skip ? 4 : 2;
    for (int i = 0; i < count; ++i) {
      BlockSpec b;
      b.prefix = "layer" + std::to_string(layer) + "." + std::to_string(i);
      b.in = i == 0 ? in_planes : planes;
      b.out = planes;
      b.stride = i == 0 ? stride : 1;
      b.downsample = b.stride != 1 || b.in != b.out;
      out.push_back(b);
    }
    in_planes = planes;
  }
  return out;
}

// ---- folding --------------------------------------------------------------------------------

namespace {

// Floats in their total order (NaN excluded): -inf ... -0 = +0 ... +inf as integers.
int64_t float_order(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7FFFFFFFu) : static_cast<int64_t>(u);
}
float float_from_order(int64_t k) {
  const uint32_t u = k >= 0 ? static_cast<uint32_t>(k) : (0x80000000u | static_cast<uint32_t>(-k));
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace

SignFold fold_sign(double weight, double bias, double mean, double var, double eps, float shift) {
  if (!(var + eps > 0) || !std::isfinite(weight) || !std::isfinite(bias) || !std::isfinite(mean) || !std::isfinite(var)) {
    fail(ErrorKind::InvalidArgument, "BatchNorm has a non-finite parameter or a negative running_var");
  }
  // LibTorch's eval BatchNorm in float32 (ATen batch_norm_cpu_collect_linear_and_constant_terms
  // and the CPU kernels): invstd = 1 / sqrt(var + eps), a = invstd * weight, b = bias - mean * a,
  // y = x * a + b as a multiply then an add. The sign of y - shift is what training saw, so the
  // threshold is taken from that float computation, not from exact arithmetic: volatile keeps each
  // step rounded to float (no FMA contraction). fl(y - shift) >= 0 <=> y >= shift, because the
  // difference of two floats is 0 only when they are equal and its rounding keeps its sign; for the
  // recipe's shift 0 the test reads fl(x * a) >= -b, as the rounding of the add keeps the sign too.
  if (!std::isfinite(shift)) fail(ErrorKind::InvalidArgument, "a learned sign threshold is not finite");
  const float wf = static_cast<float>(weight), bf = static_cast<float>(bias), mf = static_cast<float>(mean);
  const float vf = static_cast<float>(var);
  volatile float invstd = 1.f / std::sqrt(vf + static_cast<float>(eps));
  volatile float a = invstd * wf;
  volatile float ma = mf * a;
  volatile float b = bf - ma;
  const float af = a, nb = -b;
  SignFold f;
  if (af == 0.f) {
    f.mode = b >= shift ? 2 : 3;
    return f;
  }
  const float bb = b;
  auto positive = [&](float x) {
    volatile float p = x * af;
    if (shift == 0.f) return p >= nb;
    volatile float y = p + bb;
    return y >= shift;
  };
  // fl(x * a) is monotone in x (non-decreasing for a > 0, non-increasing for a < 0): binary search
  // over the floats in order for the boundary of {x : y >= 0}.
  int64_t lo = float_order(-std::numeric_limits<float>::infinity()), hi = float_order(std::numeric_limits<float>::infinity());
  if (af > 0) {
    if (!positive(float_from_order(hi))) { f.mode = 3; return f; }
    while (lo < hi) {  // smallest x with y >= 0
      const int64_t mid = lo + (hi - lo) / 2;
      if (positive(float_from_order(mid))) hi = mid; else lo = mid + 1;
    }
    f.mode = 0;
    f.threshold = float_from_order(lo);
  } else {
    if (!positive(float_from_order(lo))) { f.mode = 3; return f; }
    while (lo < hi) {  // largest x with y >= 0
      const int64_t mid = lo + (hi - lo + 1) / 2;
      if (positive(float_from_order(mid))) lo = mid; else hi = mid - 1;
    }
    f.mode = 1;
    f.threshold = float_from_order(lo);
  }
  if (f.threshold == 0.f) f.threshold = 0.f;  // -0 and +0 compare equal; store +0
  return f;
}

void sign_compare_form(const SignFold& f, float* sgn, float* t) {
  switch (f.mode) {
    case 0: *sgn = 1.f; *t = f.threshold; break;      // -1 iff x < thr
    case 1: *sgn = -1.f; *t = -f.threshold; break;    // -1 iff x > thr  <=>  -x < -thr
    case 2: *sgn = 1.f; *t = -std::numeric_limits<float>::infinity(); break;  // never -1
    default: *sgn = 0.f; *t = 1.f; break;             // 0 < 1: always -1
  }
}

// ---- export ---------------------------------------------------------------------------------

ExportResult export_packed(const std::string& float_path, const std::string& packed_path, const ExportOptions& options) {
  const SafeTensors st = SafeTensors::read_file(float_path);
  const auto cfg_it = st.metadata().find(kMetaConfig);
  if (cfg_it == st.metadata().end()) io(float_path, "__metadata__ has no bnn_torch.config: not a bnn-torch model");
  if (st.metadata().count(kMetaFormat)) io(float_path, "this is already a packed model");
  const Config cfg = Config::parse(cfg_it->second, float_path);
  if (!cfg.binary_activations) {
    fail(ErrorKind::InvalidArgument, float_path + ": the model has binaryActivations false; only sign-activation models can be packed");
  }
  // The packed format and engine hold the recipe's block only (BN -> sign folded into thresholds,
  // PReLU after the add, the avg-pool shortcut); another structure would be packed wrongly.
  auto recipe_only = [&](const char* field, const std::string& value, const char* recipe) {
    if (value != recipe) {
      fail(ErrorKind::InvalidArgument, float_path + ": the model has " + field + " '" + value +
                                           "'; the packed engine runs only the recipe's structure (" + field + " '" + recipe + "')");
    }
  };
  recipe_only("blockOrder", cfg.block_order, "bn-sign-conv");
  recipe_only("blockActivation", cfg.block_activation, "prelu");
  recipe_only("downsample", cfg.downsample, "avgpool");
  if (!cfg.binary_weights && !options.allow_float_weights) {
    fail(ErrorKind::InvalidArgument, float_path + ": the model has binaryWeights false (a stage-1 model): packing would replace its float "
                                     "weights by sign(W) * mean|W| and change its predictions; pass allowFloatWeights to pack it anyway");
  }
  for (const auto& [k, v] : options.metadata) {
    if (reserved_key(k)) fail(ErrorKind::InvalidArgument, "metadata key '" + k + "' is reserved by the packed format");
  }
  std::vector<TensorData> out;
  const int64_t W = cfg.width, C = cfg.in_channels;
  auto bn_params = [&](const std::string& p, int64_t n) {
    struct BN {
      std::vector<float> w, b, m, v;
    } bn{st.floats(p + ".weight", {n}), st.floats(p + ".bias", {n}), st.floats(p + ".running_mean", {n}),
         st.floats(p + ".running_var", {n})};
    for (int64_t i = 0; i < n; ++i) {
      if (!(bn.v[static_cast<size_t>(i)] >= 0) || !std::isfinite(bn.v[static_cast<size_t>(i)]) || !std::isfinite(bn.w[static_cast<size_t>(i)]) ||
          !std::isfinite(bn.b[static_cast<size_t>(i)]) || !std::isfinite(bn.m[static_cast<size_t>(i)])) {
        io(float_path, "tensor group '" + p + "' has a non-finite value or a negative running_var at channel " + std::to_string(i));
      }
    }
    return bn;
  };
  // Stem: conv1 then bn1 folded into weights and a bias (relu follows, unchanged).
  const int64_t k = cfg.stem == "imagenet" ? 7 : 3;
  {
    std::vector<float> w = st.floats("conv1.weight", {W, C, k, k});
    auto bn = bn_params("bn1", W);
    std::vector<float> bias(static_cast<size_t>(W));
    for (int64_t o = 0; o < W; ++o) {
      const size_t so = static_cast<size_t>(o);
      const double s = bn.w[so] / std::sqrt(static_cast<double>(bn.v[so]) + 1e-5);
      for (int64_t i = 0; i < C * k * k; ++i) w[static_cast<size_t>(o * C * k * k + i)] = static_cast<float>(w[static_cast<size_t>(o * C * k * k + i)] * s);
      bias[so] = static_cast<float>(bn.b[so] - bn.m[so] * s);
    }
    out.push_back(make_f32("conv1.weight", {W, C, k, k}, w));
    out.push_back(make_f32("conv1.bias", {W}, bias));
  }
  // `shift_name`: the block's RSign thresholds (sign(BN(x) - beta)), folded in as well.
  auto sign_layer = [&](const std::string& bn_prefix, int64_t n, const std::string& shift_name) {
    auto bn = bn_params(bn_prefix, n);
    std::vector<float> shift(static_cast<size_t>(n), 0.f);
    if (cfg.learnable_thresholds) {
      shift = st.floats(shift_name, {n});
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(shift[static_cast<size_t>(i)])) io(float_path, "tensor '" + shift_name + "' is not finite at channel " + std::to_string(i));
      }
    }
    std::vector<float> thr(static_cast<size_t>(n));
    std::vector<uint8_t> mode(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const size_t s = static_cast<size_t>(i);
      const SignFold f = fold_sign(bn.w[s], bn.b[s], bn.m[s], bn.v[s], 1e-5, shift[s]);
      thr[s] = f.threshold;
      mode[s] = f.mode;
    }
    out.push_back(make_f32(bn_prefix + ".threshold", {n}, thr));
    out.push_back(make_u8(bn_prefix + ".mode", {n}, std::move(mode)));
  };
  auto binary_conv = [&](const std::string& prefix, int64_t in, int64_t o_count) {
    const std::vector<float> w = st.floats(prefix + ".weight", {o_count, in, 3, 3});
    const int64_t bytes = words_for(in) * 8;
    std::vector<uint8_t> bits(static_cast<size_t>(o_count * 9 * bytes), 0);
    std::vector<float> alpha(static_cast<size_t>(o_count));
    for (int64_t o = 0; o < o_count; ++o) {
      double sum = 0;
      for (int64_t c = 0; c < in; ++c) {
        for (int64_t t = 0; t < 9; ++t) {
          const float v = w[static_cast<size_t>((o * in + c) * 9 + t)];
          if (std::isnan(v)) io(float_path, "tensor '" + prefix + ".weight' holds NaN (a diverged run)");
          sum += std::fabs(static_cast<double>(v));
          if (v < 0) bits[static_cast<size_t>((o * 9 + t) * bytes + c / 8)] |= static_cast<uint8_t>(1u << (c % 8));
        }
      }
      alpha[static_cast<size_t>(o)] = static_cast<float>(sum / static_cast<double>(in * 9));
    }
    out.push_back(make_u8(prefix + ".bits", {o_count, 3, 3, bytes}, std::move(bits)));
    out.push_back(make_f32(prefix + ".alpha", {o_count}, alpha));
  };
  for (const BlockSpec& b : block_specs(cfg)) {
    if (cfg.double_skip) {
      sign_layer(b.prefix + ".bn", b.in, b.prefix + ".sign_threshold");
      binary_conv(b.prefix + ".conv", b.in, b.out);
      out.push_back(make_f32(b.prefix + ".prelu.weight", {b.out}, st.floats(b.prefix + ".prelu.weight", {b.out})));
    } else {
      sign_layer(b.prefix + ".bn1", b.in, b.prefix + ".sign_threshold1");
      binary_conv(b.prefix + ".conv1", b.in, b.out);
      out.push_back(make_f32(b.prefix + ".prelu1.weight", {b.out}, st.floats(b.prefix + ".prelu1.weight", {b.out})));
      sign_layer(b.prefix + ".bn2", b.out, b.prefix + ".sign_threshold2");
      binary_conv(b.prefix + ".conv2", b.out, b.out);
      out.push_back(make_f32(b.prefix + ".prelu2.weight", {b.out}, st.floats(b.prefix + ".prelu2.weight", {b.out})));
    }
    if (b.downsample) {
      // 1x1 conv then BatchNorm: folded into one affine map (the average pool after it is linear
      // and commutes with it; the engine pools first, on 4x fewer pixels).
      std::vector<float> w = st.floats(b.prefix + ".downsample.0.weight", {b.out, b.in, 1, 1});
      auto bn = bn_params(b.prefix + ".downsample.1", b.out);
      std::vector<float> bias(static_cast<size_t>(b.out));
      for (int64_t o = 0; o < b.out; ++o) {
        const size_t so = static_cast<size_t>(o);
        const double s = bn.w[so] / std::sqrt(static_cast<double>(bn.v[so]) + 1e-5);
        for (int64_t c = 0; c < b.in; ++c) w[static_cast<size_t>(o * b.in + c)] = static_cast<float>(w[static_cast<size_t>(o * b.in + c)] * s);
        bias[so] = static_cast<float>(bn.b[so] - bn.m[so] * s);
      }
      out.push_back(make_f32(b.prefix + ".downsample.weight", {b.out, b.in}, w));
      out.push_back(make_f32(b.prefix + ".downsample.bias", {b.out}, bias));
    }
  }
  out.push_back(make_f32("fc.weight", {cfg.num_classes, 8 * W}, st.floats("fc.weight", {cfg.num_classes, 8 * W})));
  out.push_back(make_f32("fc.bias", {cfg.num_classes}, st.floats("fc.bias", {cfg.num_classes})));

  std::map<std::string, std::string> meta = options.metadata;
  for (const auto& [key, value] : format_metadata()) meta[key] = value;
  meta[kMetaConfig] = cfg.to_json();
  ExportResult r;
  r.float_bytes = st.file_bytes();
  r.packed_bytes = write_safetensors(packed_path, out, meta);
  return r;
}

// ---- load -----------------------------------------------------------------------------------

std::shared_ptr<Model> Model::load(const std::string& path) { return from(SafeTensors::read_file(path)); }

std::shared_ptr<Model> Model::load_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  return from(SafeTensors::parse(std::move(bytes), name));
}

std::shared_ptr<Model> Model::from(const SafeTensors& st) {
  const std::string& path = st.name();
  const auto& meta = st.metadata();
  auto fmt = meta.find(kMetaFormat);
  if (fmt == meta.end() || fmt->second != kFormatName) {
    io(path, std::string("not a packed bnn-torch model (__metadata__.") + kMetaFormat + " is not '" + kFormatName + "'" +
                 (meta.count(kMetaConfig) ? "; this looks like a float model: export it with exportPacked first)" : ")"));
  }
  auto ver = meta.find(kMetaVersion);
  if (ver == meta.end() || ver->second != std::to_string(kFormatVersion)) {
    io(path, "packed format version '" + (ver == meta.end() ? std::string("(missing)") : ver->second) + "' is not supported (this build reads version " +
                 std::to_string(kFormatVersion) + ")");
  }
  auto cfg_it = meta.find(kMetaConfig);
  if (cfg_it == meta.end()) io(path, "__metadata__ has no bnn_torch.config");
  auto m = std::make_shared<Model>();
  m->config_ = Config::parse(cfg_it->second, path);
  const Config& cfg = m->config_;
  if (!cfg.binary_activations) io(path, "bnn_torch.config.binaryActivations is false: not a packed model");
  for (const auto& [k, v] : meta) {
    if (!reserved_key(k)) m->metadata_[k] = v;
  }
  const int64_t W = cfg.width, C = cfg.in_channels, k = cfg.stem == "imagenet" ? 7 : 3;
  m->stem_k_ = k;
  m->stem_stride_ = k == 7 ? 2 : 1;
  m->stem_pad_ = k == 7 ? 3 : 1;
  auto f32 = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView& t = st.get(name, DType::F32, shape);
    std::vector<float> v(static_cast<size_t>(t.numel));
    if (t.bytes) std::memcpy(v.data(), t.data, t.bytes);
    return v;
  };
  {
    const std::vector<float> w = f32("conv1.weight", {W, C, k, k});
    m->stem_wt_.assign(static_cast<size_t>(k * k * C * W), 0.f);
    for (int64_t o = 0; o < W; ++o)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < k * k; ++t) m->stem_wt_[static_cast<size_t>((t * C + c) * W + o)] = w[static_cast<size_t>((o * C + c) * k * k + t)];
    m->stem_bias_ = f32("conv1.bias", {W});
  }
  auto sign = [&](const std::string& prefix, int64_t n) {
    Sign s;
    const std::vector<float> thr = f32(prefix + ".threshold", {n});
    const TensorView& mode = st.get(prefix + ".mode", DType::U8, {n});
    s.sgn.resize(static_cast<size_t>(n));
    s.thr.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      SignFold f{mode.data[i], thr[static_cast<size_t>(i)]};
      if (f.mode > 3) io(path, "tensor '" + prefix + ".mode' holds " + std::to_string(f.mode) + " at channel " + std::to_string(i) + " (0..3 expected)");
      if (std::isnan(f.threshold)) io(path, "tensor '" + prefix + ".threshold' holds NaN at channel " + std::to_string(i));
      sign_compare_form(f, &s.sgn[static_cast<size_t>(i)], &s.thr[static_cast<size_t>(i)]);
    }
    return s;
  };
  auto bin = [&](const std::string& conv_prefix, int64_t in, int64_t out, BinLayer& l) {
    const int64_t words = words_for(in);
    const TensorView& t = st.get(conv_prefix + ".bits", DType::U8, {out, 3, 3, words * 8});
    std::vector<uint64_t> bits(static_cast<size_t>(out * 9 * words));
    for (size_t i = 0; i < bits.size(); ++i) {
      uint64_t v = 0;
      for (int b = 7; b >= 0; --b) v = (v << 8) | t.data[i * 8 + static_cast<size_t>(b)];  // little-endian words on any host
      bits[i] = v;
    }
    try {
      l.conv.init(bits.data(), in, out);
    } catch (const Error& e) {
      io(path, "tensor '" + conv_prefix + ".bits': " + e.what());
    }
    l.alpha = f32(conv_prefix + ".alpha", {out});
  };
  for (const BlockSpec& spec : block_specs(cfg)) {
    Block b;
    b.in = spec.in;
    b.out = spec.out;
    b.stride = spec.stride;
    b.classic = !cfg.double_skip;
    b.downsample = spec.downsample;
    if (cfg.double_skip) {
      b.a.sign = sign(spec.prefix + ".bn", spec.in);
      bin(spec.prefix + ".conv", spec.in, spec.out, b.a);
      b.a.prelu = f32(spec.prefix + ".prelu.weight", {spec.out});
      b.a.stride = spec.stride;
    } else {
      b.a.sign = sign(spec.prefix + ".bn1", spec.in);
      bin(spec.prefix + ".conv1", spec.in, spec.out, b.a);
      b.a.prelu = f32(spec.prefix + ".prelu1.weight", {spec.out});
      b.a.stride = spec.stride;
      b.b.sign = sign(spec.prefix + ".bn2", spec.out);
      bin(spec.prefix + ".conv2", spec.out, spec.out, b.b);
      b.b.prelu = f32(spec.prefix + ".prelu2.weight", {spec.out});
      b.b.stride = 1;
    }
    if (spec.downsample) {
      const std::vector<float> w = f32(spec.prefix + ".downsample.weight", {spec.out, spec.in});
      b.down_wt.resize(w.size());
      for (int64_t o = 0; o < spec.out; ++o)
        for (int64_t c = 0; c < spec.in; ++c) b.down_wt[static_cast<size_t>(c * spec.out + o)] = w[static_cast<size_t>(o * spec.in + c)];
      b.down_bias = f32(spec.prefix + ".downsample.bias", {spec.out});
    }
    m->blocks_.push_back(std::move(b));
  }
  {
    const int64_t F = 8 * W, N = cfg.num_classes;
    const std::vector<float> w = f32("fc.weight", {N, F});
    m->fc_wt_.resize(w.size());
    for (int64_t o = 0; o < N; ++o)
      for (int64_t c = 0; c < F; ++c) m->fc_wt_[static_cast<size_t>(c * N + o)] = w[static_cast<size_t>(o * F + c)];
    m->fc_bias_ = f32("fc.bias", {N});
  }
  return m;
}

// ---- predict --------------------------------------------------------------------------------

namespace {

constexpr int64_t kFloatChunk = 32;  // pixels per work item in the float layers

}  // namespace

void Model::predict(const float* images, int64_t n, int64_t c, int64_t h, int64_t w, float* logits, int threads, Isa isa) const {
  const Config& cfg = config_;
  if (n < 1 || h < 1 || w < 1) fail(ErrorKind::InvalidArgument, "predict: the batch and image sizes must be positive");
  if (c != cfg.in_channels) {
    fail(ErrorKind::InvalidArgument, "predict: the model has inChannels = " + std::to_string(cfg.in_channels) + " but the input has " + std::to_string(c));
  }
  if (h > 16384 || w > 16384 || n > (int64_t{1} << 20) || n * c * h * w > (int64_t{1} << 31)) {
    fail(ErrorKind::InvalidArgument, "predict: the input is too large");
  }
  if (threads < 1 || threads > 1024) fail(ErrorKind::InvalidArgument, "predict: threads must be between 1 and 1024");
  const Isa chosen = resolve_isa(isa);
  std::unique_lock<std::mutex> cached(workspace_mutex_, std::try_to_lock);
  std::unique_ptr<ThreadPool> own_pool;
  Buffers own_buffers;
  if (cached.owns_lock()) {
    if (!pool_ || pool_->size() != threads) {
      pool_.reset();  // its threads stop before new ones start
      pool_ = std::make_unique<ThreadPool>(threads);
    }
  } else {
    own_pool = std::make_unique<ThreadPool>(threads);
  }
  ThreadPool& pool = own_pool ? *own_pool : *pool_;
  Buffers& buffers = own_pool ? own_buffers : buffers_;
  // The batch runs in slices whose largest activation map stays near 1 MiB, so that a layer's
  // input and output stay in cache; images are independent, so slicing changes no result.
  const int64_t largest = std::max<int64_t>(1, h * w * cfg.width * 4 / (cfg.stem == "imagenet" ? 4 : 1));
  const int64_t slice = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{1} << 20) / largest));
  const int64_t F = 8 * cfg.width, N = cfg.num_classes;
  std::vector<float>& feat = buffers.features;
  feat.assign(static_cast<size_t>(n * F), 0.f);
  for (int64_t i0 = 0; i0 < n; i0 += slice) {
    const int64_t nb = std::min(slice, n - i0);
    predict_slice(images + i0 * c * h * w, nb, c, h, w, feat.data() + i0 * F, chosen, pool, buffers);
  }
  // The classifier once for the whole batch (its weights are read once per 4 images, not per
  // slice), split over blocks of classes.
  constexpr int64_t kClassBlock = 64;
  pool.parallel_for((N + kClassBlock - 1) / kClassBlock, [&](int64_t b, int) {
    const int64_t o0 = b * kClassBlock, on = std::min(kClassBlock, N - o0);
    for (int64_t img = 0; img < n; ++img) std::memcpy(logits + img * N + o0, fc_bias_.data() + o0, static_cast<size_t>(on) * 4);
    detail::gemm_acc(chosen, feat.data(), F, n, F, fc_wt_.data() + o0, N, on, logits + o0, N);
  });
}

void Model::predict_slice(const float* images, int64_t n, int64_t c, int64_t h, int64_t w, float* features, Isa chosen, ThreadPool& pool,
                          Buffers& buf) const {
  const Config& cfg = config_;
  const int64_t W = cfg.width;
  // Stem: conv (bn1 folded) + relu, one work item per output row.
  const int64_t k = stem_k_, s = stem_stride_, pad = stem_pad_;
  const int64_t sh = (h + 2 * pad - k) / s + 1, sw = (w + 2 * pad - k) / s + 1;
  if (sh < 1 || sw < 1) fail(ErrorKind::InvalidArgument, "predict: the image is smaller than the stem's kernel");
  Map& x = buf.x;
  x.resize(n, sh, sw, W);
  {
    // The input, channels-last with a zero border of `pad`, so that each output's receptive field
    // is k runs of k * c contiguous floats (read in place, not gathered with bounds checks).
    const int64_t ph = h + 2 * pad, pw = w + 2 * pad;
    std::vector<float>& in = buf.stem_in;
    in.assign(static_cast<size_t>(n * ph * pw * c), 0.f);
    pool.parallel_for(n * h, [&](int64_t row, int) {
      const int64_t img = row / h, y = row % h;
      float* dst = in.data() + ((img * ph + y + pad) * pw + pad) * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* src = images + ((img * c + ch) * h + y) * w;
        for (int64_t xx = 0; xx < w; ++xx) dst[xx * c + ch] = src[xx];
      }
    });
    // Each kernel row kh is one product with K = k * c: output ox's taps in input row oy * s + kh
    // are k * c contiguous floats starting at pixel ox * s, so the padded input itself is the
    // left operand (row stride s * c, overlapping rows), with no im2col copy. The sums still run
    // over (kh, kw, c) in order from the bias, as one product over all taps would.
    pool.parallel_for(n * sh, [&](int64_t row, int) {
      const int64_t img = row / sh, oy = row % sh;
      float* out = x.data.data() + row * sw * W;
      for (int64_t ox = 0; ox < sw; ++ox) std::memcpy(out + ox * W, stem_bias_.data(), static_cast<size_t>(W) * 4);
      for (int64_t kh = 0; kh < k; ++kh) {
        const float* v = in.data() + (img * ph + oy * s + kh) * pw * c;
        detail::gemm_acc(chosen, v, s * c, sw, k * c, stem_wt_.data() + kh * k * c * W, W, W, out, W);
      }
      for (int64_t i = 0; i < sw * W; ++i) out[i] = std::max(out[i], 0.f);
    });
  }
  if (cfg.stem == "imagenet") {
    // max_pool2d(3, stride 2, padding 1): padded taps never win.
    Map& y = buf.y;
    const int64_t oh = (x.h + 2 - 3) / 2 + 1, ow = (x.w + 2 - 3) / 2 + 1;
    y.resize(n, oh, ow, W);
    pool.parallel_for(n * oh, [&](int64_t row, int) {
      const int64_t img = row / oh, oy = row % oh;
      for (int64_t ox = 0; ox < ow; ++ox) {
        float* dst = y.data.data() + (row * ow + ox) * W;
        for (int64_t ch = 0; ch < W; ++ch) dst[ch] = -std::numeric_limits<float>::infinity();
        for (int64_t ky = 0; ky < 3; ++ky) {
          const int64_t iy = oy * 2 - 1 + ky;
          if (iy < 0 || iy >= x.h) continue;
          for (int64_t kx = 0; kx < 3; ++kx) {
            const int64_t ix = ox * 2 - 1 + kx;
            if (ix < 0 || ix >= x.w) continue;
            const float* src = x.data.data() + ((img * x.h + iy) * x.w + ix) * W;
            for (int64_t ch = 0; ch < W; ++ch) dst[ch] = std::max(dst[ch], src[ch]);
          }
        }
      }
    });
    std::swap(x, y);
  }

  std::vector<uint64_t>& packed = buf.packed;
  Map &shortcut = buf.shortcut, &pooled = buf.pooled, &mid = buf.mid, &y = buf.y;
  // Binarise x by `sign` into a zero-bordered packed buffer.
  auto pack = [&](const Map& in, const Sign& sign) {
    const int64_t words = words_for(in.c);
    // Only the 1-pixel border needs zeros (+1): pack_rows writes every word of the interior.
    const int64_t ph = in.h + 2, pw = in.w + 2;
    packed.resize(static_cast<size_t>(in.n * ph * pw * words));
    for (int64_t img = 0; img < in.n; ++img) {
      uint64_t* base = packed.data() + img * ph * pw * words;
      std::fill(base, base + pw * words, uint64_t{0});                               // top row
      std::fill(base + (ph - 1) * pw * words, base + ph * pw * words, uint64_t{0});  // bottom row
      for (int64_t y = 1; y < ph - 1; ++y) {
        std::fill(base + y * pw * words, base + (y * pw + 1) * words, uint64_t{0});            // left
        std::fill(base + ((y + 1) * pw - 1) * words, base + (y + 1) * pw * words, uint64_t{0});  // right
      }
    }
    pool.parallel_for(in.n * in.h, [&](int64_t row, int) {
      const int64_t img = row / in.h, yy = row % in.h;
      detail::pack_rows(chosen, in.data.data() + row * in.w * in.c, in.w, in.c, sign.sgn.data(), sign.thr.data(),
                        packed.data() + ((img * (in.h + 2) + yy + 1) * (in.w + 2) + 1) * words, words, words);
    });
  };
  // out = prelu(alpha * conv + add), add optional.
  auto conv = [&](const Map& in, const BinLayer& l, const Map* add, Map& out) {
    pack(in, l.sign);
    const int64_t oh = conv_out_size(in.h, l.stride), ow = conv_out_size(in.w, l.stride), O = l.conv.out_channels;
    out.resize(in.n, oh, ow, O);
    run_binary_conv(l.conv, packed.data(), in.n, in.h, in.w, l.stride, chosen, pool,
                    FloatEpilogue{l.alpha.data(), l.prelu.data(), add ? add->data.data() : nullptr, out.data.data(), O});
  };
  for (const Block& b : blocks_) {
    const Map* add = &x;
    if (b.downsample) {
      // avg_pool2d(k = stride, ceil_mode, count_include_pad = false) first, then the folded 1x1 conv.
      const Map* src = &x;
      if (b.stride != 1) {
        const int64_t st = b.stride, oh = (x.h + st - 1) / st, ow = (x.w + st - 1) / st;
        pooled.resize(n, oh, ow, x.c);
        pool.parallel_for(n * oh, [&](int64_t row, int) {
          const int64_t img = row / oh, oy = row % oh;
          const int64_t y0 = oy * st, y1 = std::min(y0 + st, x.h);
          for (int64_t ox = 0; ox < ow; ++ox) {
            const int64_t x0 = ox * st, x1 = std::min(x0 + st, x.w);
            float* dst = pooled.data.data() + (row * ow + ox) * x.c;
            std::fill(dst, dst + x.c, 0.f);
            for (int64_t yy = y0; yy < y1; ++yy)
              for (int64_t xx = x0; xx < x1; ++xx) {
                const float* s0 = x.data.data() + ((img * x.h + yy) * x.w + xx) * x.c;
                for (int64_t ch = 0; ch < x.c; ++ch) dst[ch] += s0[ch];
              }
            const float inv = 1.f / static_cast<float>((y1 - y0) * (x1 - x0));
            for (int64_t ch = 0; ch < x.c; ++ch) dst[ch] *= inv;
          }
        });
        src = &pooled;
      }
      shortcut.resize(src->n, src->h, src->w, b.out);
      const int64_t pixels = src->n * src->h * src->w;
      pool.parallel_for((pixels + kFloatChunk - 1) / kFloatChunk, [&](int64_t chunk, int) {
        const int64_t p0 = chunk * kFloatChunk, np = std::min(kFloatChunk, pixels - p0);
        float* dst = shortcut.data.data() + p0 * b.out;
        for (int64_t i = 0; i < np; ++i) std::memcpy(dst + i * b.out, b.down_bias.data(), static_cast<size_t>(b.out) * 4);
        detail::gemm_acc(chosen, src->data.data() + p0 * src->c, src->c, np, src->c, b.down_wt.data(), b.out, b.out, dst, b.out);
      });
      add = &shortcut;
    }
    if (b.classic) {
      conv(x, b.a, nullptr, mid);
      conv(mid, b.b, add, y);
    } else {
      conv(x, b.a, add, y);
    }
    std::swap(x, y);
  }
  // Global average pool into the features.
  const int64_t F = x.c, pix = x.h * x.w;
  pool.parallel_for(n, [&](int64_t img, int) {
    float* f = features + img * F;
    for (int64_t p = 0; p < pix; ++p) {
      const float* src = x.data.data() + (img * pix + p) * F;
      for (int64_t ch = 0; ch < F; ++ch) f[ch] += src[ch];
    }
    for (int64_t ch = 0; ch < F; ++ch) f[ch] /= static_cast<float>(pix);
  });
}

}  // namespace bnn::infer
