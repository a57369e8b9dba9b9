// Binding for native/train: the optimizer handle and the one-call training and evaluation steps.
#include "addon/train.h"

#include <memory>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/distributed.h"
#include "addon/errors.h"
#include "addon/mixup.h"
#include "addon/model.h"
#include "addon/tensor.h"
#include "core/device.h"
#include "core/errors.h"
#include "core/runtime.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace bnn::addon {

namespace {

train::OptimizerOptions parse_optimizer(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw_type_error(env, "optimizer options must be an object");
  auto o = value.As<Napi::Object>();
  train::OptimizerOptions a;
  if (!o.Get("kind").IsUndefined()) {
    const std::string kind = string_field(o, "kind");
    if (kind == "sgd") a.kind = train::OptimizerKind::SGD;
    else if (kind != "adam") throw Napi::RangeError::New(env, "optimizer kind must be 'adam' or 'sgd', got '" + kind + "'");
  }
  a.momentum = optional_number(o, "momentum", a.momentum);
  a.nesterov = optional_bool(o, "nesterov", a.nesterov);
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
      optimizer_ = std::make_shared<train::Optimizer>(params, parse_optimizer(info.Length() > 1 ? info[1] : info.Env().Undefined()));
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
    return guard(info.Env(), [&]() -> Napi::Value {
      train::NamedParameters out = optimizer()->state();
      for (auto& entry : scaler->state()) out.push_back(std::move(entry));
      return named_tensors_to_js(info.Env(), out);
    });
  }
  // The loss scaler's entries (train::LossScaler::kPrefix) go to it, the rest to the optimizer;
  // both are checked before either changes.
  Napi::Value load_state(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const train::NamedParameters all = named_tensors_from_js(info.Length() > 0 ? info[0] : info.Env().Undefined(), "loadState");
      train::NamedParameters own, scaled;
      const std::string prefix = train::LossScaler::kPrefix;
      for (const auto& entry : all) (entry.first.rfind(prefix, 0) == 0 ? scaled : own).push_back(entry);
      train::LossScaler restored;
      restored.load_state(scaled);
      optimizer()->load_state(own);
      *scaler = std::move(restored);  // growth settings: the defaults on both sides
      // The captured steps wrote the state just replaced (and the old loss scale).
      train::clear_step_graph(*graph);
      return info.Env().Undefined();
    });
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    optimizer_.reset();
    graph = train::make_step_graph();  // drops the captured graphs (a step in flight keeps its own)
    return info.Env().Undefined();
  }

  std::shared_ptr<train::Optimizer> optimizer_;

 public:
  // float16's dynamic loss scale goes with the optimizer it feeds (as GradScaler with its optimizer).
  std::shared_ptr<train::LossScaler> scaler = std::make_shared<train::LossScaler>();
  // The CUDA graphs of its captured steps (cudaGraph), which write its state.
  std::shared_ptr<train::StepGraph> graph = train::make_step_graph();
};

// Device-side running sums of training steps (train::StepMetrics): read() is the one place a
// CUDA training loop waits for the GPU, so it runs off the main thread.
class StepMetricsHandle : public Napi::ObjectWrap<StepMetricsHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "StepMetricsHandle",
                       {
                           InstanceMethod<&StepMetricsHandle::read>("read"),
                           InstanceMethod<&StepMetricsHandle::reset>("reset"),
                           InstanceMethod<&StepMetricsHandle::dispose>("dispose"),
                       });
  }
  explicit StepMetricsHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StepMetricsHandle>(info) {}
  std::shared_ptr<train::StepMetrics> get() const {
    if (!metrics_) fail(ErrorKind::Disposed, "these step metrics have been disposed and can no longer be used");
    return metrics_;
  }

 private:
  Napi::Value read(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto m = get();
      return AsyncTask::run(info.Env(), "bnn.stepMetrics.read", [m]() -> AsyncTask::Convert {
        const train::StepMetrics::Totals t = m->read();
        return [t](Napi::Env env) -> Napi::Value {
          auto out = Napi::Object::New(env);
          out.Set("lossSum", t.loss_sum);
          out.Set("correct", static_cast<double>(t.correct));
          out.Set("count", static_cast<double>(t.count));
          out.Set("steps", static_cast<double>(t.steps));
          out.Set("firstNonFinite", static_cast<double>(t.first_bad));
          out.Set("nonFiniteLoss", t.bad_loss);
          out.Set("firstBadLabel", static_cast<double>(t.first_bad_label));
          out.Set("skipped", static_cast<double>(t.skipped));
          return out;
        };
      });
    });
  }
  Napi::Value reset(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      get()->reset();
      return info.Env().Undefined();
    });
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    metrics_.reset();  // a step or read in flight holds its own reference
    return info.Env().Undefined();
  }
  std::shared_ptr<train::StepMetrics> metrics_ = std::make_shared<train::StepMetrics>();
};

namespace {

train::Precision parse_precision(const Napi::Object& o) {
  if (o.Get("precision").IsUndefined()) return train::Precision::Float32;
  const std::string p = string_field(o, "precision");
  if (p == "float32") return train::Precision::Float32;
  if (p == "bfloat16") return train::Precision::BFloat16;
  if (p == "float16") return train::Precision::Float16;
  throw Napi::RangeError::New(o.Env(), "precision must be 'float32', 'bfloat16' or 'float16', got '" + p + "'");
}

OptimizerHandle* unwrap_optimizer(const Napi::CallbackInfo& info, size_t index) {
  return unwrap_instance<OptimizerHandle>(info.Env(), arg(info, index), addon_data(info.Env()).optimizer_constructor, "optimizer", "an optimizer (Adam or SGD)");
}

// trainStep(model, optimizer, images, labels, { labelSmoothing, clipLatentWeights, ..., distill }) -> Promise
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
    options.scaler = handle->scaler;
    if (info.Length() > 4 && info[4].IsObject()) {
      auto o = info[4].As<Napi::Object>();
      options.label_smoothing = optional_number(o, "labelSmoothing", 0.0);
      options.clip_latent_weights = optional_bool(o, "clipLatentWeights", options.clip_latent_weights);
      options.stop_requested = optional_bool(o, "stop", options.stop_requested);
      Napi::Value dp = o.Get("dataParallel");
      if (!dp.IsUndefined() && !dp.IsNull()) options.hooks = unwrap_data_parallel(env, dp);
      options.precision = parse_precision(o);
      options.mixup = parse_mixup(env, o.Get("mixup"), images.dim() > 0 ? images.size(0) : 0);
      Napi::Value distill = o.Get("distill");
      if (!distill.IsUndefined() && !distill.IsNull()) {
        if (!distill.IsObject()) throw_type_error(env, "distill must be an object { teacher, temperature, weight }");
        auto dobj = distill.As<Napi::Object>();
        auto d = std::make_shared<train::Distillation>();
        d->teacher = unwrap_model_value(env, dobj.Get("teacher"), "distill.teacher");
        d->temperature = optional_number(dobj, "temperature", d->temperature);
        d->weight = optional_number(dobj, "weight", d->weight);
        options.distill = d;
      }
      if (optional_bool(o, "cudaGraph", false)) options.graph = handle->graph;
      Napi::Value metrics = o.Get("metrics");
      if (!metrics.IsUndefined() && !metrics.IsNull()) {
        options.metrics = unwrap_instance<StepMetricsHandle>(env, metrics, addon_data(env).step_metrics_constructor, "metrics",
                                                             "a StepMetrics handle")
                              ->get();
      }
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
    const train::Precision precision =
        info.Length() > 3 && info[3].IsObject() ? parse_precision(info[3].As<Napi::Object>()) : train::Precision::Float32;
    (*model)->check_input(images);
    return AsyncTask::run(info.Env(), "bnn.evalStep", [model, images, labels, precision]() -> AsyncTask::Convert {
      const train::EvalResult r = train::eval_step(*model, images, labels, precision);
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

Napi::Value cuda_bf16_supported(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const int64_t index = integer_arg(info, 0, "device", 0, 1 << 16);
    if (!cuda_available() || index >= cuda_device_count()) return Napi::Boolean::New(info.Env(), false);
    return Napi::Boolean::New(info.Env(), train::cuda_bf16_supported(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index))));
  });
}

}  // namespace

void init_train(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = OptimizerHandle::define(env);
  addon_data(env).optimizer_constructor = Napi::Persistent(ctor);
  exports.Set("OptimizerHandle", ctor);
  Napi::Function metrics = StepMetricsHandle::define(env);
  addon_data(env).step_metrics_constructor = Napi::Persistent(metrics);
  exports.Set("StepMetricsHandle", metrics);
  exports.Set("cudaBf16Supported", Napi::Function::New<cuda_bf16_supported>(env, "cudaBf16Supported"));
  exports.Set("trainStep", Napi::Function::New<train_step>(env, "trainStep"));
  exports.Set("stepGraphCounts", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const train::StepGraphCounts c = train::step_graph_counts();
    auto out = Napi::Object::New(info.Env());
    out.Set("captures", static_cast<double>(c.captures));
    out.Set("replays", static_cast<double>(c.replays));
    out.Set("warmups", static_cast<double>(c.warmups));
    return out;
  }, "stepGraphCounts"));
  exports.Set("evalStep", Napi::Function::New<eval_step>(env, "evalStep"));
}

}  // namespace bnn::addon
