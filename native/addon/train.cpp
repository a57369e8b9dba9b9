// Binding for native/train: the optimizer handle and the one-call training and evaluation steps.
#include "addon/train.h"

#include <memory>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/distributed.h"
#include "addon/errors.h"
#include "addon/model.h"
#include "addon/tensor.h"
#include "core/errors.h"
#include "core/runtime.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace bnn::addon {

namespace {

train::AdamOptions parse_adam(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw_type_error(env, "optimizer options must be an object");
  auto o = value.As<Napi::Object>();
  train::AdamOptions a;
  a.lr = optional_number(o, "lr", a.lr);
  a.eps = optional_number(o, "eps", a.eps);
  a.weight_decay = optional_number(o, "weightDecay", a.weight_decay);
  Napi::Value betas = o.Get("betas");
  if (!betas.IsUndefined()) {
    if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2 || !betas.As<Napi::Array>().Get(0u).IsNumber() ||
        !betas.As<Napi::Array>().Get(1u).IsNumber()) {
      throw_type_error(env, "betas must be [beta1, beta2]");
    }
    a.beta1 = betas.As<Napi::Array>().Get(0u).As<Napi::Number>().DoubleValue();
    a.beta2 = betas.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue();
  }
  a.decoupled = optional_bool(o, "decoupled", a.decoupled);
  Napi::Value kinds = o.Get("noDecayOn");
  if (!kinds.IsUndefined()) {
    if (!kinds.IsArray()) throw_type_error(env, "noDecayOn must be an array of 'bn', 'prelu', 'bias'");
    auto arr = kinds.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      if (!arr.Get(i).IsString()) throw_type_error(env, "noDecayOn must be an array of 'bn', 'prelu', 'bias'");
      a.no_decay_on.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
    }
  }
  a.validate();
  return a;
}

}  // namespace

class OptimizerHandle : public Napi::ObjectWrap<OptimizerHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "OptimizerHandle",
                       {
                           InstanceMethod<&OptimizerHandle::step>("step"),
                           InstanceMethod<&OptimizerHandle::zero_grad>("zeroGrad"),
                           InstanceMethod<&OptimizerHandle::get_lr>("getLr"),
                           InstanceMethod<&OptimizerHandle::set_lr>("setLr"),
                           InstanceMethod<&OptimizerHandle::no_decay_names>("noDecayNames"),
                           InstanceMethod<&OptimizerHandle::state>("state"),
                           InstanceMethod<&OptimizerHandle::load_state>("loadState"),
                           InstanceMethod<&OptimizerHandle::dispose>("dispose"),
                       });
  }

  // new OptimizerHandle([[name, Tensor], ...], options): names pick the no-decay group.
  explicit OptimizerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OptimizerHandle>(info) {
    guard(info.Env(), [&] {
      const train::NamedParameters params = named_tensors_from_js(info.Length() > 0 ? info[0] : info.Env().Undefined(), "Adam");
      for (const auto& [name, p] : params) {
        if (!p.is_leaf() || !p.requires_grad()) {
          fail(ErrorKind::InvalidArgument, "parameter '" + name + "' is not a leaf tensor that requires gradients");
        }
      }
      optimizer_ = std::make_shared<train::Optimizer>(params, parse_adam(info.Length() > 1 ? info[1] : info.Env().Undefined()));
    });
  }

  std::shared_ptr<train::Optimizer> optimizer() const {
    if (!optimizer_) fail(ErrorKind::Disposed, "this optimizer has been disposed and can no longer be used");
    return optimizer_;
  }

 private:
  Napi::Value step(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      optimizer()->step();
      return info.Env().Undefined();
    });
  }
  Napi::Value zero_grad(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      optimizer()->zero_grad();
      return info.Env().Undefined();
    });
  }
  Napi::Value get_lr(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), optimizer()->lr()); });
  }
  Napi::Value set_lr(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      optimizer()->set_lr(number_arg(info, 0, "lr"));
      return info.Env().Undefined();
    });
  }
  Napi::Value no_decay_names(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto names = optimizer()->no_decay_names();
      auto out = Napi::Array::New(info.Env(), names.size());
      for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), names[i]);
      return out;
    });
  }
  Napi::Value state(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return named_tensors_to_js(info.Env(), optimizer()->state()); });
  }
  Napi::Value load_state(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      optimizer()->load_state(named_tensors_from_js(info.Length() > 0 ? info[0] : info.Env().Undefined(), "loadState"));
      return info.Env().Undefined();
    });
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    optimizer_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<train::Optimizer> optimizer_;
};

namespace {

OptimizerHandle* unwrap_optimizer(const Napi::CallbackInfo& info, size_t index) {
  return unwrap_instance<OptimizerHandle>(info.Env(), arg(info, index), addon_data(info.Env()).optimizer_constructor, "optimizer", "an Adam optimizer");
}

// trainStep(model, optimizer, images, labels, { labelSmoothing, clipLatentWeights }) -> Promise
Napi::Value train_step(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto model = unwrap_model(info, 0);
    OptimizerHandle* handle = unwrap_optimizer(info, 1);
    auto optimizer = handle->optimizer();
    if (!optimizer->covers((*model)->parameters(true))) {
      fail(ErrorKind::InvalidArgument, "the optimizer does not hold this model's parameters (it was made for another model)");
    }
    at::Tensor images = TensorHandle::unwrap(info, 2, "images");
    at::Tensor labels = TensorHandle::unwrap(info, 3, "labels");
    train::TrainStepOptions options;
    if (info.Length() > 4 && info[4].IsObject()) {
      auto o = info[4].As<Napi::Object>();
      options.label_smoothing = optional_number(o, "labelSmoothing", 0.0);
      options.clip_latent_weights = optional_bool(o, "clipLatentWeights", options.clip_latent_weights);
      options.stop_requested = optional_bool(o, "stop", options.stop_requested);
      Napi::Value dp = o.Get("dataParallel");
      if (!dp.IsUndefined() && !dp.IsNull()) options.hooks = unwrap_data_parallel(env, dp);
    }
    (*model)->check_input(images);  // fail fast on the caller's stack
    return AsyncTask::run(env, "bnn.trainStep", [model, optimizer, images, labels, options]() -> AsyncTask::Convert {
      const train::StepResult r = train::train_step(*model, *optimizer, images, labels, options);
      return [r](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("loss", r.loss);
        out.Set("correct", static_cast<double>(r.correct));
        out.Set("count", static_cast<double>(r.count));
        out.Set("stop", r.stop);
        return out;
      };
    });
  });
}

Napi::Value eval_step(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    auto model = unwrap_model(info, 0);
    at::Tensor images = TensorHandle::unwrap(info, 1, "images");
    at::Tensor labels = TensorHandle::unwrap(info, 2, "labels");
    (*model)->check_input(images);
    return AsyncTask::run(info.Env(), "bnn.evalStep", [model, images, labels]() -> AsyncTask::Convert {
      const train::EvalResult r = train::eval_step(*model, images, labels);
      return [r](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("lossSum", r.loss_sum);
        out.Set("correct", static_cast<double>(r.correct));
        out.Set("count", static_cast<double>(r.count));
        auto cc = Napi::Array::New(env, r.class_correct.size());
        auto cn = Napi::Array::New(env, r.class_count.size());
        for (size_t i = 0; i < r.class_correct.size(); ++i) {
          cc.Set(static_cast<uint32_t>(i), static_cast<double>(r.class_correct[i]));
          cn.Set(static_cast<uint32_t>(i), static_cast<double>(r.class_count[i]));
        }
        out.Set("classCorrect", cc);
        out.Set("classCount", cn);
        return out;
      };
    });
  });
}

}  // namespace

void init_train(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = OptimizerHandle::define(env);
  addon_data(env).optimizer_constructor = Napi::Persistent(ctor);
  exports.Set("OptimizerHandle", ctor);
  exports.Set("trainStep", Napi::Function::New<train_step>(env, "trainStep"));
  exports.Set("evalStep", Napi::Function::New<eval_step>(env, "evalStep"));
}

}  // namespace bnn::addon
