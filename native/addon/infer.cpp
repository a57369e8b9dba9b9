// The `infer` binding: a separate addon, build/Release/bnn_infer.node, over native/infer (packed
// 1-bit models and the XNOR-popcount engine) and native/image (decoding). It links no LibTorch, so
// a program that only predicts never loads it. For that reason it cannot use errors.cpp and
// async_task.cpp (both include c10 / ATen headers); the few lines they would give are repeated
// here, mapping bnn::ErrorKind to the same stable codes.
//
// Raw interface (the TypeScript facade src/infer/ wraps it):
//   isaInfo(): { best, supported }
//   exportPacked(floatPath, packedPath, { metadata?, allowFloatWeights? }): Promise<{ floatBytes, packedBytes }>
//   loadModel(path): Promise<NativeInferModel>
//   decodeImage(data, { width, height, channels }): Promise<Uint8Array>   (HWC uint8)
//   benchConv({ inChannels, outChannels, height, width, stride, batch, threads, isa?, iterations }): Promise<{ seconds, isa }>
//   NativeInferModel: info(), predict(images, shape, { threads?, isa? }): Promise<Float32Array>, dispose()
#include <napi.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "image/decode.h"
#include "image/transforms.h"
#include "image/resize.h"
#include "infer/binary_conv.h"
#include "infer/isa.h"
#include "infer/model.h"

namespace bnn::addon::infer_binding {

using bnn::infer::Isa;

// ---- errors ---------------------------------------------------------------------------------

struct ErrorInfo {
  int type = 0;  // 0 Error, 1 TypeError, 2 RangeError
  std::string code, message;
};

ErrorInfo describe(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const bnn::Error& e) {
    switch (e.kind()) {
      case ErrorKind::InvalidArgument: return {2, "BNN_INVALID_ARGUMENT", e.what()};
      case ErrorKind::InvalidType: return {1, "BNN_INVALID_TYPE", e.what()};
      case ErrorKind::Disposed: return {0, "BNN_DISPOSED", e.what()};
      case ErrorKind::Io: return {0, "BNN_IO", e.what()};
      default: return {0, "BNN_ERROR", e.what()};
    }
  } catch (const std::bad_alloc&) {
    return {0, "BNN_OUT_OF_MEMORY", "out of memory"};
  } catch (const std::exception& e) {
    return {0, "BNN_INTERNAL_ERROR", e.what()};
  } catch (...) {
    return {0, "BNN_INTERNAL_ERROR", "unknown native error"};
  }
}

Napi::Error make_error(Napi::Env env, const ErrorInfo& info) {
  Napi::Error error = info.type == 1 ? Napi::TypeError::New(env, info.message)
                      : info.type == 2 ? Napi::RangeError::New(env, info.message)
                                       : Napi::Error::New(env, info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

[[noreturn]] void type_error(Napi::Env env, const std::string& m) { throw make_error(env, {1, "BNN_INVALID_TYPE", m}); }
[[noreturn]] void range_error(Napi::Env env, const std::string& m) { throw make_error(env, {2, "BNN_INVALID_ARGUMENT", m}); }

template <typename F>
auto guard(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw make_error(env, describe(std::current_exception()));
  }
}

// ---- async work: `work` runs on a libuv thread and returns the step that builds the JS value ---

class Task : public Napi::AsyncWorker {
 public:
  using Convert = std::function<Napi::Value(Napi::Env)>;
  using Work = std::function<Convert()>;

  static Napi::Promise run(Napi::Env env, const char* name, Work work) {
    auto* task = new Task(env, name, std::move(work));
    Napi::Promise promise = task->deferred_.Promise();
    task->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      convert_ = work_();
    } catch (...) {
      failure_ = describe(std::current_exception());
      SetError(failure_->message);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(convert_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(make_error(env, describe(std::current_exception())).Value());
    }
  }
  void OnError(const Napi::Error& error) override {
    Napi::HandleScope scope(Env());
    if (failure_) deferred_.Reject(make_error(Env(), *failure_).Value());
    else deferred_.Reject(error.Value());
  }

 private:
  Task(Napi::Env env, const char* name, Work work)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)) {}
  Napi::Promise::Deferred deferred_;
  Work work_;
  Convert convert_;
  std::optional<ErrorInfo> failure_;
};

// ---- argument helpers -----------------------------------------------------------------------

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) type_error(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Object options_arg(const Napi::CallbackInfo& info, size_t i, const char* name, bool required) {
  if (info.Length() <= i || info[i].IsUndefined()) {
    if (required) type_error(info.Env(), std::string(name) + " must be an object");
    return Napi::Object::New(info.Env());
  }
  if (!info[i].IsObject()) type_error(info.Env(), std::string(name) + " must be an object");
  return info[i].As<Napi::Object>();
}

// An integer option in [lo, hi]; absent -> fallback (required when fallback is empty).
int64_t int_option(Napi::Env env, const Napi::Object& o, const char* key, int64_t lo, int64_t hi, std::optional<int64_t> fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (!fallback) type_error(env, std::string("options.") + key + " is required");
    return *fallback;
  }
  if (!v.IsNumber()) type_error(env, std::string("options.") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    range_error(env, std::string("options.") + key + " must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                         v.ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

Isa isa_option(Napi::Env env, const Napi::Object& o) {
  Napi::Value v = o.Get("isa");
  if (v.IsUndefined()) return Isa::Auto;
  if (!v.IsString()) type_error(env, "options.isa must be a string");
  return guard(env, [&] {
    const Isa isa = bnn::infer::parse_isa(v.As<Napi::String>().Utf8Value());
    bnn::infer::resolve_isa(isa);  // unsupported on this CPU: RangeError now, before any work
    return isa;
  });
}

// ---- model ----------------------------------------------------------------------------------

struct InstanceData {
  Napi::FunctionReference model_ctor;
};

class InferModel : public Napi::ObjectWrap<InferModel> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeInferModel",
                       {InstanceMethod<&InferModel::guarded<&InferModel::info>>("info"),
                        InstanceMethod<&InferModel::guarded<&InferModel::predict>>("predict"),
                        InstanceMethod<&InferModel::guarded<&InferModel::dispose>>("dispose")});
  }
  explicit InferModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InferModel>(info) {}
  std::shared_ptr<bnn::infer::Model> model;

 private:
  // NAPI_CPP_EXCEPTIONS lets only Napi::Error through: a std::bad_alloc (a huge input's copy) or a
  // bnn::Error escaping a method would terminate the process instead of throwing in JavaScript.
  template <Napi::Value (InferModel::*Method)(const Napi::CallbackInfo&)>
  Napi::Value guarded(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return (this->*Method)(info); });
  }

  const std::shared_ptr<bnn::infer::Model>& live(Napi::Env env) const {
    if (!model) throw make_error(env, {0, "BNN_DISPOSED", "the inference model was disposed"});
    return model;
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& m = live(env);
    const auto& c = m->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("formatVersion", m->format_version());
    o.Set("inChannels", static_cast<double>(c.in_channels));
    o.Set("numClasses", static_cast<double>(c.num_classes));
    o.Set("width", static_cast<double>(c.width));
    o.Set("stem", c.stem);
    o.Set("doubleSkip", c.double_skip);
    Napi::Object meta = Napi::Object::New(env);
    for (const auto& [k, v] : m->metadata()) meta.Set(k, v);
    o.Set("metadata", meta);
    o.Set("isa", bnn::infer::isa_name(bnn::infer::best_isa()));
    return o;
  }

  Napi::Value predict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<bnn::infer::Model> m = live(env);  // the running task holds its own reference
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      type_error(env, "images must be a Float32Array");
    }
    Napi::Float32Array images = info[0].As<Napi::Float32Array>();
    if (info.Length() < 2 || !info[1].IsArray() || info[1].As<Napi::Array>().Length() != 4) {
      type_error(env, "shape must be an array [n, c, h, w]");
    }
    Napi::Array shape_arr = info[1].As<Napi::Array>();
    int64_t shape[4];
    const char* names[4] = {"n", "c", "h", "w"};
    for (uint32_t i = 0; i < 4; ++i) {
      Napi::Value v = shape_arr.Get(i);
      if (!v.IsNumber()) type_error(env, std::string("shape[") + std::to_string(i) + "] (" + names[i] + ") must be a number");
      const double d = v.As<Napi::Number>().DoubleValue();
      if (!(d == std::floor(d)) || d < 1 || d > 1e9) {
        range_error(env, std::string("shape[") + std::to_string(i) + "] (" + names[i] + ") must be a positive integer, got " + v.ToString().Utf8Value());
      }
      shape[i] = static_cast<int64_t>(d);
    }
    const auto& cfg = m->config();
    if (shape[1] != cfg.in_channels) {
      range_error(env, "shape[1] (channels) is " + std::to_string(shape[1]) + " but the model has inChannels = " + std::to_string(cfg.in_channels));
    }
    if (shape[2] > 16384 || shape[3] > 16384 || shape[0] > (1 << 20)) range_error(env, "shape: images larger than 16384 pixels a side or batches above 2^20 are refused");
    // The engine's own limit, checked before the copy below (which runs on this thread).
    if (shape[0] * shape[1] * shape[2] * shape[3] > (int64_t{1} << 31)) range_error(env, "shape: more than 2^31 input values in one call are refused (split the batch)");
    const double expect = static_cast<double>(shape[0]) * static_cast<double>(shape[1]) * static_cast<double>(shape[2]) * static_cast<double>(shape[3]);
    if (static_cast<double>(images.ElementLength()) != expect) {
      range_error(env, "images.length is " + std::to_string(images.ElementLength()) + " but shape [" + std::to_string(shape[0]) + ", " +
                           std::to_string(shape[1]) + ", " + std::to_string(shape[2]) + ", " + std::to_string(shape[3]) + "] needs " +
                           std::to_string(static_cast<int64_t>(expect)));
    }
    const Napi::Object opts = options_arg(info, 2, "options", false);
    const int threads = static_cast<int>(int_option(env, opts, "threads", 1, 1024, 1));
    const Isa isa = isa_option(env, opts);
    // A copy: the caller may reuse its array while the prediction runs.
    auto input = std::make_shared<std::vector<float>>(images.Data(), images.Data() + images.ElementLength());
    const int64_t n = shape[0], c = shape[1], h = shape[2], w = shape[3];
    return Task::run(env, "bnn_infer.predict", [m, input, n, c, h, w, threads, isa]() -> Task::Convert {
      auto logits = std::make_shared<std::vector<float>>(static_cast<size_t>(n * m->config().num_classes));
      m->predict(input->data(), n, c, h, w, logits->data(), threads, isa);
      return [logits](Napi::Env env) -> Napi::Value {
        Napi::Float32Array out = Napi::Float32Array::New(env, logits->size());
        if (!logits->empty()) std::memcpy(out.Data(), logits->data(), logits->size() * 4);
        return out;
      };
    });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    model.reset();
    return info.Env().Undefined();
  }
};

// ---- functions ------------------------------------------------------------------------------

Napi::Value isa_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("best", bnn::infer::isa_name(bnn::infer::best_isa()));
  Napi::Array all = Napi::Array::New(env);
  uint32_t i = 0;
  for (Isa isa : bnn::infer::supported_isas()) all.Set(i++, bnn::infer::isa_name(isa));
  o.Set("supported", all);
  return o;
}

Napi::Value export_packed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string from = string_arg(info, 0, "floatPath"), to = string_arg(info, 1, "packedPath");
  const Napi::Object opts = options_arg(info, 2, "options", false);
  bnn::infer::ExportOptions eo;
  Napi::Value meta = opts.Get("metadata");
  if (!meta.IsUndefined()) {
    if (!meta.IsObject() || meta.IsArray()) type_error(env, "options.metadata must be an object of strings");
    Napi::Object mo = meta.As<Napi::Object>();
    Napi::Array keys = mo.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      const std::string k = keys.Get(i).ToString().Utf8Value();
      Napi::Value v = mo.Get(k);
      if (!v.IsString()) type_error(env, "options.metadata['" + k + "'] must be a string");
      eo.metadata[k] = v.As<Napi::String>().Utf8Value();
    }
  }
  Napi::Value allow = opts.Get("allowFloatWeights");
  if (!allow.IsUndefined()) {
    if (!allow.IsBoolean()) type_error(env, "options.allowFloatWeights must be a boolean");
    eo.allow_float_weights = allow.As<Napi::Boolean>().Value();
  }
  return Task::run(env, "bnn_infer.exportPacked", [from, to, eo]() -> Task::Convert {
    const auto r = bnn::infer::export_packed(from, to, eo);
    return [r](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("floatBytes", static_cast<double>(r.float_bytes));
      o.Set("packedBytes", static_cast<double>(r.packed_bytes));
      return o;
    };
  });
}

Napi::Value load_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(info, 0, "path");
  return Task::run(env, "bnn_infer.loadModel", [path]() -> Task::Convert {
    std::shared_ptr<bnn::infer::Model> m = bnn::infer::Model::load(path);
    return [m](Napi::Env env) -> Napi::Value {
      Napi::Object obj = env.GetInstanceData<InstanceData>()->model_ctor.New({});
      InferModel::Unwrap(obj)->model = m;
      return obj;
    };
  });
}

// Decodes a JPEG or PNG (native/image: the bytes Pillow gives), then resizes the whole image to
// exactly width x height with Pillow's antialiased bilinear resample (image::Resampler, the
// filter torchvision's Resize uses on PIL images), 1 (grey, PIL "L") or 3 (RGB) channels: HWC uint8.
// With `resize`, the training pipeline's evaluation transform instead (image::render in eval mode:
// shorter side to `resize`, centre crop width x width), so a photo reaches the engine as the same
// pixels `bnn eval` gave the float model.
Napi::Value decode_image(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    type_error(env, "data must be a Uint8Array");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  const Napi::Object opts = options_arg(info, 1, "options", true);
  const int width = static_cast<int>(int_option(env, opts, "width", 1, 65500, std::nullopt));
  const int height = static_cast<int>(int_option(env, opts, "height", 1, 65500, std::nullopt));
  const int channels = static_cast<int>(int_option(env, opts, "channels", 1, 3, std::nullopt));
  if (channels == 2) range_error(env, "options.channels must be 1 or 3, got 2");
  if (static_cast<int64_t>(width) * height > (int64_t{1} << 28)) range_error(env, "options.width * options.height is too large");
  auto bytes = std::make_shared<std::vector<uint8_t>>(data.Data(), data.Data() + data.ByteLength());
  if (opts.Has("resize") && !opts.Get("resize").IsUndefined()) {
    bnn::image::TransformSpec spec;
    spec.mode = bnn::image::TransformMode::Eval;
    spec.channels = channels;
    spec.size = width;
    spec.resize = static_cast<int>(int_option(env, opts, "resize", 1, 65500, std::nullopt));
    if (width != height) range_error(env, "options.resize (a centre crop) needs width == height");
    if (opts.Has("dctScaling") && !opts.Get("dctScaling").IsUndefined()) {
      if (!opts.Get("dctScaling").IsBoolean()) type_error(env, "options.dctScaling must be a boolean");
      spec.dct_scaling = opts.Get("dctScaling").As<Napi::Boolean>();
    }
    bnn::image::validate(spec);
    return Task::run(env, "bnn_infer.decodeImage", [bytes, spec]() -> Task::Convert {
      auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(spec.size) * spec.size * spec.channels);
      bnn::image::render(bytes->data(), bytes->size(), spec, 0, 0, 0, out->data());
      return [out](Napi::Env env) -> Napi::Value {
        Napi::Uint8Array a = Napi::Uint8Array::New(env, out->size());
        std::memcpy(a.Data(), out->data(), out->size());
        return a;
      };
    });
  }
  return Task::run(env, "bnn_infer.decodeImage", [bytes, width, height, channels]() -> Task::Convert {
    bnn::image::DecodeRequest req;
    req.channels = channels;
    const bnn::image::Decoded d = bnn::image::decode(bytes->data(), bytes->size(), req);
    auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(width) * height * channels);
    const bnn::image::Resampler r(d.image.width, d.image.height, d.crop, width, height);
    r.run(d.image.view(), 0, 0, bnn::image::Rect{0, 0, width, height}, out->data());
    return [out](Napi::Env env) -> Napi::Value {
      Napi::Uint8Array a = Napi::Uint8Array::New(env, out->size());
      std::memcpy(a.Data(), out->data(), out->size());
      return a;
    };
  });
}

Napi::Value bench_conv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Object o = options_arg(info, 0, "options", true);
  const int64_t in = int_option(env, o, "inChannels", 1, 8192, std::nullopt);
  const int64_t out = int_option(env, o, "outChannels", 1, 8192, std::nullopt);
  const int64_t h = int_option(env, o, "height", 1, 4096, std::nullopt);
  const int64_t w = int_option(env, o, "width", 1, 4096, std::nullopt);
  const int stride = static_cast<int>(int_option(env, o, "stride", 1, 2, std::nullopt));
  const int64_t batch = int_option(env, o, "batch", 1, 4096, std::nullopt);
  const int threads = static_cast<int>(int_option(env, o, "threads", 1, 1024, std::nullopt));
  const int iterations = static_cast<int>(int_option(env, o, "iterations", 1, 1000000, std::nullopt));
  const Isa isa = isa_option(env, o);
  return Task::run(env, "bnn_infer.benchConv", [=]() -> Task::Convert {
    const auto r = bnn::infer::bench_binary_conv(in, out, h, w, stride, batch, threads, isa, iterations);
    return [r](Napi::Env env) -> Napi::Value {
      Napi::Object res = Napi::Object::New(env);
      res.Set("seconds", r.seconds);
      res.Set("isa", bnn::infer::isa_name(r.isa));
      return res;
    };
  });
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return F(info); });
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new InstanceData();
  data->model_ctor = Napi::Persistent(InferModel::define(env));
  env.SetInstanceData<InstanceData>(data);
  exports.Set("isaInfo", Napi::Function::New<guarded<isa_info>>(env, "isaInfo"));
  exports.Set("exportPacked", Napi::Function::New<guarded<export_packed>>(env, "exportPacked"));
  exports.Set("loadModel", Napi::Function::New<guarded<load_model>>(env, "loadModel"));
  exports.Set("decodeImage", Napi::Function::New<guarded<decode_image>>(env, "decodeImage"));
  exports.Set("benchConv", Napi::Function::New<guarded<bench_conv>>(env, "benchConv"));
  return exports;
}

}  // namespace bnn::addon::infer_binding

static Napi::Object InitBnnInfer(Napi::Env env, Napi::Object exports) { return bnn::addon::infer_binding::init(env, exports); }

NODE_API_MODULE(bnn_infer, InitBnnInfer)
