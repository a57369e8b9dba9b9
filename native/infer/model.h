#pragma once
// The packed 1-bit model: export from bnn-torch's float safetensors, loading, and inference.
// See docs/packed-format.md for the file format. No LibTorch, no Node: plain C++17.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "infer/binary_conv.h"
#include "infer/isa.h"

namespace bnn::infer {

class SafeTensors;

constexpr const char* kFormatName = "bnn-torch-packed";
constexpr int kFormatVersion = 1;

// bnn_torch.config as training writes it.
struct Config {
  std::string arch = "resnet18";
  int64_t num_classes = 0, in_channels = 0, width = 0;
  std::string stem = "small";  // 'small' | 'imagenet'
  bool double_skip = true, binary_activations = true, binary_weights = true;
  double bn_momentum = 0.1;
  // The tricks-ablation switches of the float model (absent in older files: the recipe's). The
  // engine runs the recipe's structure only, so export_packed refuses any other value.
  std::string block_order = "bn-sign-conv", block_activation = "prelu", downsample = "avgpool";
  // ReActNet's RSign: sign(BN(x) - beta) with a learned beta per channel (<block>.sign_threshold*),
  // folded into the packed thresholds, so the packed model needs nothing more at run time.
  bool learnable_thresholds = false;

  static Config parse(const std::string& json_text, const std::string& where);
  std::string to_json() const;
};

// The sign after a BatchNorm, folded: +1 iff BN(x) - shift >= 0 (0 maps to +1, as in training;
// shift is RSign's learned threshold, 0 for the recipe's sign).
//   mode 0: +1 iff x >= threshold (BN scale > 0)   mode 1: +1 iff x <= threshold (scale < 0)
//   mode 2: always +1 (scale 0, bias >= 0)         mode 3: always -1 (scale 0, bias < 0)
// BN(x) is evaluated as LibTorch evaluates it in float32 (see model.cpp), and the threshold is the
// boundary float of {x : BN(x) >= 0}, so for every float x the comparison agrees with it exactly.
struct SignFold {
  uint8_t mode = 0;
  float threshold = 0;
};
SignFold fold_sign(double weight, double bias, double mean, double var, double eps = 1e-5, float shift = 0.f);
// The engine's branch-free form: bit (-1) = sgn * x < t.
void sign_compare_form(const SignFold& f, float* sgn, float* t);

struct ExportOptions {
  std::map<std::string, std::string> metadata;  // stored verbatim in __metadata__
  bool allow_float_weights = false;             // pack a stage-1 model (binaryWeights false) anyway
};
struct ExportResult {
  uint64_t float_bytes = 0, packed_bytes = 0;
};
ExportResult export_packed(const std::string& float_path, const std::string& packed_path, const ExportOptions& options);

class Model {
 public:
  // Loads and checks a packed file (format name, version, every tensor's presence, dtype, shape).
  static std::shared_ptr<Model> load(const std::string& path);
  // The same from the file's bytes (`name` prefixes error messages).
  static std::shared_ptr<Model> load_bytes(std::vector<uint8_t> bytes, const std::string& name);

  const Config& config() const { return config_; }
  int format_version() const { return kFormatVersion; }
  // The caller's metadata (the file's __metadata__ without the format's own keys).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // images: n x c x h x w float32 (NCHW, normalised as in training); logits: n x num_classes.
  // threads >= 1; isa Auto picks best_isa(). Results do not depend on `threads`.
  void predict(const float* images, int64_t n, int64_t c, int64_t h, int64_t w, float* logits, int threads,
               Isa isa = Isa::Auto) const;

  struct Sign {
    std::vector<float> sgn, thr;
  };
  struct BinLayer {
    Sign sign;
    BinaryConv conv;
    std::vector<float> alpha, prelu;
    int stride = 1;
  };
  struct Block {
    int64_t in = 0, out = 0;
    int stride = 1;
    bool classic = false;
    BinLayer a, b;  // b only for classic blocks
    bool downsample = false;
    std::vector<float> down_wt, down_bias;  // [in][out] (BatchNorm folded), [out]
  };

 private:
  // A channels-last float activation map.
  struct Map {
    int64_t n = 0, h = 0, w = 0, c = 0;
    std::vector<float> data;
    void resize(int64_t n_, int64_t h_, int64_t w_, int64_t c_) {
      n = n_, h = h_, w = w_, c = c_;
      data.resize(static_cast<size_t>(n * h * w * c));
    }
  };
  struct Buffers {
    Map x, y, shortcut, pooled, mid;
    std::vector<uint64_t> packed;
    std::vector<float> stem_in, features;
  };
  static std::shared_ptr<Model> from(const SafeTensors& st);
  // Everything up to the global average pool: features n x (8 * width).
  void predict_slice(const float* images, int64_t n, int64_t c, int64_t h, int64_t w, float* features, Isa isa, ThreadPool& pool,
                     Buffers& buffers) const;

  Config config_;
  std::map<std::string, std::string> metadata_;
  // The pool and activation buffers of the last predict call, kept for the next one: starting
  // threads and faulting in fresh pages for megabytes of maps cost more per call than a small
  // network's whole forward. A call that finds them in use (predict calls may overlap on a model)
  // makes its own.
  mutable std::mutex workspace_mutex_;
  mutable std::unique_ptr<ThreadPool> pool_;
  mutable Buffers buffers_;
  int64_t stem_k_ = 3, stem_stride_ = 1, stem_pad_ = 1;
  std::vector<float> stem_wt_, stem_bias_;  // [(kh * k + kw) * C + c][width] (bn1 folded)
  std::vector<Block> blocks_;
  std::vector<float> fc_wt_, fc_bias_;  // [8 * width][classes]
};

// Block descriptions shared by export, load and tests: name prefix, channels, stride.
struct BlockSpec {
  std::string prefix;  // "layer2.0"
  int64_t in = 0, out = 0;
  int stride = 1;
  bool downsample = false;
};
std::vector<BlockSpec> block_specs(const Config& config);

}  // namespace bnn::infer
