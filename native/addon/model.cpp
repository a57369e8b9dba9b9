// Binding for native/nn: a JS handle owning one ResNet18 module. Converts and dispatches only.
#include "addon/model.h"

#include <memory>

#include <torch/torch.h>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/errors.h"
#include "addon/tensor.h"
#include "core/device.h"
#include "core/errors.h"
#include "nn/resnet.h"
#include "nn/state.h"

namespace bnn::addon {

namespace {

nn::ResNetConfig parse_config(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw_type_error(env, "the model config must be an object");
  auto o = value.As<Napi::Object>();
  nn::ResNetConfig c;
  // The ranges here only keep the conversion exact; ResNetConfig::validate() owns the real limits.
  c.num_classes = optional_integer(o, "numClasses", c.num_classes, -1e12, 1e12);
  c.in_channels = optional_integer(o, "inChannels", c.in_channels, -1e12, 1e12);
  c.width = optional_integer(o, "width", c.width, -1e12, 1e12);
  Napi::Value stem = o.Get("stem");
  if (!stem.IsUndefined()) {
    if (!stem.IsString()) throw_type_error(env, "stem must be 'small' or 'imagenet'");
    c.stem = stem.As<Napi::String>().Utf8Value();
  }
  c.double_skip = optional_bool(o, "doubleSkip", c.double_skip);
  c.binary_activations = optional_bool(o, "binaryActivations", c.binary_activations);
  c.binary_weights = optional_bool(o, "binaryWeights", c.binary_weights);
  c.bn_momentum = optional_number(o, "bnMomentum", c.bn_momentum);
  auto optional_string = [&](const char* key, std::string& field) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    if (!v.IsString()) throw_type_error(env, std::string(key) + " must be a string");
    field = v.As<Napi::String>().Utf8Value();
  };
  optional_string("blockOrder", c.block_order);
  optional_string("blockActivation", c.block_activation);
  optional_string("downsample", c.downsample);
  optional_string("signGradient", c.sign_gradient);
  c.learnable_thresholds = optional_bool(o, "learnableThresholds", c.learnable_thresholds);
  c.validate();
  return c;
}

Napi::Object config_to_js(Napi::Env env, const nn::ResNetConfig& c) {
  auto o = Napi::Object::New(env);
  o.Set("arch", "resnet18");
  o.Set("numClasses", static_cast<double>(c.num_classes));
  o.Set("inChannels", static_cast<double>(c.in_channels));
  o.Set("width", static_cast<double>(c.width));
  o.Set("stem", c.stem);
  o.Set("doubleSkip", c.double_skip);
  o.Set("binaryActivations", c.binary_activations);
  o.Set("binaryWeights", c.binary_weights);
  o.Set("bnMomentum", c.bn_momentum);
  o.Set("blockOrder", c.block_order);
  o.Set("blockActivation", c.block_activation);
  o.Set("downsample", c.downsample);
  o.Set("signGradient", c.sign_gradient);
  o.Set("learnableThresholds", c.learnable_thresholds);
  return o;
}

}  // namespace

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "ModelHandle",
                       {
                           InstanceMethod<&ModelHandle::forward>("forward"),
                           InstanceMethod<&ModelHandle::forward_async>("forwardAsync"),
                           InstanceMethod<&ModelHandle::activation_statistics>("activationStatistics"),
                           InstanceMethod<&ModelHandle::train>("train"),
                           InstanceMethod<&ModelHandle::is_training>("isTraining"),
                           InstanceMethod<&ModelHandle::to>("to"),
                           InstanceMethod<&ModelHandle::device>("device"),
                           InstanceMethod<&ModelHandle::named_parameters>("namedParameters"),
                           InstanceMethod<&ModelHandle::named_buffers>("namedBuffers"),
                           InstanceMethod<&ModelHandle::set_binary_weights>("setBinaryWeights"),
                           InstanceMethod<&ModelHandle::config>("config"),
                           InstanceMethod<&ModelHandle::load_state>("loadState"),
                           InstanceMethod<&ModelHandle::dispose>("dispose"),
                           InstanceMethod<&ModelHandle::is_disposed>("isDisposed"),
                       });
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
    guard(info.Env(), [&] {
      model_ = std::make_shared<nn::ResNet18>(parse_config(info.Length() > 0 ? info[0] : info.Env().Undefined()));
    });
  }

  // Shared so that an async forward keeps the module alive even if the handle is disposed meanwhile.
  std::shared_ptr<nn::ResNet18> model() const {
    if (!model_) fail(ErrorKind::Disposed, "this model has been disposed and can no longer be used");
    return model_;
  }

 private:
  Napi::Value forward(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto m = model();
      return TensorHandle::wrap(info.Env(), (*m)->forward(TensorHandle::unwrap(info, 0, "input")));
    });
  }

  Napi::Value forward_async(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto m = model();
      at::Tensor x = TensorHandle::unwrap(info, 0, "input");
      (*m)->check_input(x);  // fail fast, on the caller's stack
      return AsyncTask::run(info.Env(), "bnn.forward", [m, x]() -> AsyncTask::Convert {
        at::Tensor y = (*m)->forward(x);
        return [y](Napi::Env env) -> Napi::Value { return TensorHandle::wrap(env, y); };
      });
    });
  }

  Napi::Value activation_statistics(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto m = model();
      at::Tensor x = TensorHandle::unwrap(info, 0, "input");
      (*m)->check_input(x);
      return AsyncTask::run(info.Env(), "bnn.activationStatistics", [m, x]() -> AsyncTask::Convert {
        std::vector<nn::ActivationStats> stats = (*m)->activation_statistics(x);
        return [stats](Napi::Env env) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, stats.size());
          for (size_t i = 0; i < stats.size(); ++i) {
            const auto& s = stats[i];
            Napi::Object o = Napi::Object::New(env);
            o.Set("layer", s.layer);
            o.Set("values", static_cast<double>(s.values));
            o.Set("saturated", static_cast<double>(s.saturated));
            o.Set("positive", static_cast<double>(s.positive));
            o.Set("channels", static_cast<double>(s.channels));
            o.Set("constantChannels", static_cast<double>(s.constant_channels));
            out.Set(static_cast<uint32_t>(i), o);
          }
          return out;
        };
      });
    });
  }

  Napi::Value train(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsBoolean()) throw_type_error(info.Env(), "train(on) takes a boolean");
      (*model())->train(info[0].As<Napi::Boolean>());
      return info.Env().Undefined();
    });
  }

  Napi::Value is_training(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), (*model())->is_training()); });
  }

  Napi::Value to(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      (*model())->to(resolve_device(string_arg(info, 0, "device")));
      return info.Env().Undefined();
    });
  }

  Napi::Value device(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const auto d = (*model())->conv1->weight.device();
      return Napi::String::New(info.Env(), d.is_cuda() ? "cuda:" + std::to_string(std::max<int>(0, d.index())) : d.str());
    });
  }

  Napi::Value named_parameters(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      nn::NamedTensors out;
      for (const auto& p : (*model())->named_parameters(true)) out.emplace_back(p.key(), p.value());
      return named_tensors_to_js(info.Env(), out);
    });
  }

  Napi::Value named_buffers(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      nn::NamedTensors out;
      for (const auto& b : (*model())->named_buffers(true)) out.emplace_back(b.key(), b.value());
      return named_tensors_to_js(info.Env(), out);
    });
  }

  Napi::Value set_binary_weights(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsBoolean()) throw_type_error(info.Env(), "setBinaryWeights(on) takes a boolean");
      (*model())->set_binary_weights(info[0].As<Napi::Boolean>());
      return info.Env().Undefined();
    });
  }

  Napi::Value config(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return config_to_js(info.Env(), (*model())->config); });
  }

  Napi::Value load_state(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      nn::load_state_dict(**model(), named_tensors_from_js(info.Length() > 0 ? info[0] : info.Env().Undefined(), "loadState"));
      return info.Env().Undefined();
    });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

  std::shared_ptr<nn::ResNet18> model_;
};

void init_model(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ModelHandle::define(env);
  addon_data(env).model_constructor = Napi::Persistent(ctor);
  exports.Set("ModelHandle", ctor);
}

std::shared_ptr<nn::ResNet18> unwrap_model(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  return unwrap_instance<ModelHandle>(env, arg(info, index), addon_data(env).model_constructor, "model", "a Model")->model();
}

std::shared_ptr<nn::ResNet18> unwrap_model_value(Napi::Env env, const Napi::Value& value, const std::string& what) {
  return unwrap_instance<ModelHandle>(env, value, addon_data(env).model_constructor, what, "a Model")->model();
}

}  // namespace bnn::addon
