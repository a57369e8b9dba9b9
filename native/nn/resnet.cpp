#include "nn/resnet.h"

#include <cmath>
#include <initializer_list>

#include <torch/nn/functional/pooling.h>

#include "core/errors.h"
#include "nn/basic_block.h"

namespace bnn::nn {

void ResNetConfig::validate() const {
  auto positive = [](int64_t v, const char* name, int64_t max) {
    if (v < 1 || v > max) {
      fail(ErrorKind::InvalidArgument, std::string(name) + " must be between 1 and " + std::to_string(max) + ", got " + std::to_string(v));
    }
  };
  positive(num_classes, "numClasses", 1 << 20);
  positive(in_channels, "inChannels", 4096);
  positive(width, "width", 4096);
  if (stem != "small" && stem != "imagenet") {
    fail(ErrorKind::InvalidArgument, "stem must be 'small' or 'imagenet', got '" + stem + "'");
  }
  auto one_of = [](const std::string& v, const char* name, std::initializer_list<const char*> allowed) {
    std::string list;
    for (const char* a : allowed) {
      if (v == a) return;
      list += (list.empty() ? "'" : ", '") + std::string(a) + "'";
    }
    fail(ErrorKind::InvalidArgument, std::string(name) + " must be one of " + list + ", got '" + v + "'");
  };
  one_of(block_order, "blockOrder", {"bn-sign-conv", "sign-conv-bn"});
  one_of(block_activation, "blockActivation", {"prelu", "relu", "none", "rprelu"});
  one_of(downsample, "downsample", {"avgpool", "strided", "binary"});
  one_of(sign_gradient, "signGradient", {"ste", "approx-sign"});
  // Both act on sign activations; without them (the ReLU baseline) they would silently do nothing.
  if (!binary_activations && sign_gradient != "ste") {
    fail(ErrorKind::InvalidArgument, "signGradient '" + sign_gradient + "' needs binaryActivations (a model with ReLU activations has no sign)");
  }
  if (!binary_activations && learnable_thresholds) {
    fail(ErrorKind::InvalidArgument, "learnableThresholds needs binaryActivations (a model with ReLU activations has no sign)");
  }
  // The binary shortcut's sign sits in a Sequential with torchvision's child names and has no place
  // for a threshold; a threshold on some signs but not others would be a third variant.
  if (learnable_thresholds && downsample == "binary") {
    fail(ErrorKind::InvalidArgument, "learnableThresholds is not supported with downsample 'binary' (the binary shortcut's sign has no threshold)");
  }
  if (!(bn_momentum >= 0.0 && bn_momentum <= 1.0)) {
    fail(ErrorKind::InvalidArgument, "bnMomentum must be between 0 and 1, got " + std::to_string(bn_momentum));
  }
}

ResNet18Impl::ResNet18Impl(ResNetConfig config_) : config(std::move(config_)) {
  config.validate();
  reset();
  set_channels_last(true);
}

void ResNet18Impl::set_channels_last(bool on) {
  channels_last_ = on;
  const auto format = on ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  for (auto& p : parameters(true)) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(format));
  }
}

void ResNet18Impl::reset() {
  const bool imagenet = config.stem == "imagenet";
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(config.in_channels, config.width, imagenet ? 7 : 3)
                                                         .stride(imagenet ? 2 : 1)
                                                         .padding(imagenet ? 3 : 1)
                                                         .bias(false)));
  bn1 = register_module("bn1", BatchNorm2d(torch::nn::BatchNorm2dOptions(config.width).momentum(config.bn_momentum)));

  int64_t in_planes = config.width;
  auto make_layer = [&](int64_t planes, int64_t stride) {
    torch::nn::Sequential layer;
    // ResNet-18 has two basic blocks per layer; the double skip splits each into two single-conv
    // blocks, each with its own shortcut.
    for (int block = 0; block < 2; ++block) {
      const int64_t s = block == 0 ? stride : 1;
      auto opts = [&](int64_t in, int64_t st) {
        return BlockOptions(in, planes)
            .stride(st)
            .binary_activations(config.binary_activations)
            .binary_weights(config.binary_weights)
            .bn_momentum(config.bn_momentum)
            .order(config.block_order == "sign-conv-bn" ? BlockOrder::SignConvBn : BlockOrder::BnSignConv)
            .activation(config.block_activation == "relu"     ? BlockActivation::ReLU
                        : config.block_activation == "none"   ? BlockActivation::None
                        : config.block_activation == "rprelu" ? BlockActivation::RPReLU
                                                              : BlockActivation::PReLU)
            .sign_gradient(config.sign_gradient == "approx-sign" ? SignGradient::ApproxSign : SignGradient::Ste)
            .learnable_thresholds(config.learnable_thresholds)
            .downsample(config.downsample == "strided"  ? DownsampleKind::Strided
                        : config.downsample == "binary" ? DownsampleKind::Binary
                                                        : DownsampleKind::AvgPool);
      };
      if (config.double_skip) {
        layer->push_back(BasicBlock(opts(in_planes, s)));
        layer->push_back(BasicBlock(opts(planes, 1)));
      } else {
        layer->push_back(ClassicBasicBlock(opts(in_planes, s)));
      }
      in_planes = planes;
    }
    return layer;
  };
  layer1 = register_module("layer1", make_layer(config.width, 1));
  layer2 = register_module("layer2", make_layer(config.width * 2, 2));
  layer3 = register_module("layer3", make_layer(config.width * 4, 2));
  layer4 = register_module("layer4", make_layer(config.width * 8, 2));
  fc = register_module("fc", torch::nn::Linear(config.width * 8, config.num_classes));
}

void ResNet18Impl::check_input(const torch::Tensor& x) const {
  if (!x.defined()) fail(ErrorKind::InvalidArgument, "forward: the input is undefined");
  if (x.dim() != 4) {
    fail(ErrorKind::InvalidArgument, "forward: expected an input of shape [N, C, H, W], got shape " + c10::str(x.sizes()));
  }
  if (x.size(1) != config.in_channels) {
    fail(ErrorKind::InvalidArgument, "forward: the model has inChannels = " + std::to_string(config.in_channels) +
                                         " but the input has " + std::to_string(x.size(1)) + " channels (shape " +
                                         c10::str(x.sizes()) + ")");
  }
  const auto& w = conv1->weight;
  if (x.scalar_type() != w.scalar_type()) {
    fail(ErrorKind::InvalidType, std::string("forward: expected a ") + c10::toString(w.scalar_type()) +
                                     " input (the model's dtype), got " + c10::toString(x.scalar_type()));
  }
  if (x.device() != w.device()) {
    fail(ErrorKind::InvalidArgument, "forward: the input is on " + x.device().str() + " but the model is on " + w.device().str());
  }
  if (x.size(0) == 0) fail(ErrorKind::InvalidArgument, "forward: the batch is empty");
  if (x.size(2) < 1 || x.size(3) < 1) fail(ErrorKind::InvalidArgument, "forward: the input has no pixels: " + c10::str(x.sizes()));
}

torch::Tensor ResNet18Impl::forward(const torch::Tensor& x) {
  check_input(x);
  torch::Tensor out = torch::relu(bn1(conv1(channels_last_ ? x.contiguous(at::MemoryFormat::ChannelsLast) : x)));
  // A one-channel input (Fashion-MNIST) is both layouts at once, and the stem conv then answers in
  // NCHW: the first block would miss the channels-last kernels (fused PReLU, BatchNorm -> sign).
  if (channels_last_) out = out.contiguous(at::MemoryFormat::ChannelsLast);
  if (config.stem == "imagenet") {
    out = torch::nn::functional::max_pool2d(out, torch::nn::functional::MaxPool2dFuncOptions(3).stride(2).padding(1));
  }
  out = layer4->forward(layer3->forward(layer2->forward(layer1->forward(out))));
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  return fc(out);
}

std::vector<ActivationStats> ResNet18Impl::activation_statistics(const torch::Tensor& x) {
  check_input(x);
  if (!config.binary_activations) return {};
  torch::NoGradGuard no_grad;
  ActivationProbe probe;
  // Everything the forward below changes, put back by the destructor even when it throws.
  struct Restore {
    ResNet18Impl& model;
    bool training;
    std::vector<torch::Tensor> buffers, saved;
    std::vector<std::pair<BatchNorm2dImpl*, std::shared_ptr<BatchNormSync>>> syncs;
    ~Restore() {
      // A destructor must not throw (that would terminate Node): a failed copy back (say, after a
      // CUDA error) leaves those statistics as the forward left them, and the rest is restored.
      for (auto& [bn, sync] : syncs) bn->sync = sync;
      try {
        for (auto& m : model.modules(/*include_self=*/false)) {
          if (auto* b = m->as<BasicBlockImpl>()) b->probe = nullptr;
          if (auto* b = m->as<ClassicBasicBlockImpl>()) b->probe = nullptr;
        }
        model.train(training);
        for (size_t i = 0; i < saved.size(); ++i) buffers[i].copy_(saved[i]);
      } catch (...) {
      }
    }
  } restore{*this, is_training(), {}, {}, {}};
  for (auto& b : buffers(true)) {
    restore.saved.push_back(b.clone());  // first: a failed clone leaves `buffers` no longer than `saved`
    restore.buffers.push_back(b);
  }
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    auto& m = item.value();
    // Only this process runs the probe: a synchronised BatchNorm would wait for the other replicas.
    if (auto* bn = m->as<BatchNorm2dImpl>()) {
      restore.syncs.emplace_back(bn, bn->sync);
      bn->sync = nullptr;
    }
    if (auto* b = m->as<BasicBlockImpl>()) b->probe = &probe, b->name = item.key();
    if (auto* b = m->as<ClassicBasicBlockImpl>()) b->probe = &probe, b->name = item.key();
  }
  train(true);
  forward(x);
  return probe.results();
}

void ResNet18Impl::set_batch_norm_sync(const std::shared_ptr<BatchNormSync>& sync) {
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* bn = module->as<BatchNorm2dImpl>()) bn->sync = sync;
  }
}

void ResNet18Impl::set_binary_weights(bool on) {
  config.binary_weights = on;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<BinaryConv2dImpl>()) conv->set_binary_weights(on);
  }
}

}  // namespace bnn::nn
