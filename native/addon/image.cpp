// Binding for native/image: decoding, the transforms, and writing / inspecting prepared stores.
// Converts and dispatches only; decoding runs on worker threads.
#include "addon/image.h"

#include <memory>
#include <string>
#include <vector>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/errors.h"
#include "core/errors.h"
#include "data/image_source.h"
#include "data/worker_pool.h"
#include "image/decode.h"
#include "image/resize.h"
#include "image/store.h"

namespace bnn::addon {

namespace {

// The bytes of a Uint8Array / Buffer argument, copied: the work runs after this call returns.
std::vector<uint8_t> bytes_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Napi::Value v = arg(info, index);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw_type_error(info.Env(), std::string(what) + " must be a Uint8Array or Buffer");
  }
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Object options_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Napi::Value v = arg(info, index);
  if (!v.IsObject()) throw_type_error(info.Env(), std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

Napi::Value image_to_js(Napi::Env env, const image::Image& image) {
  auto out = Napi::Object::New(env);
  auto data = Napi::Uint8Array::New(env, image.pixels.size());
  std::copy(image.pixels.begin(), image.pixels.end(), data.Data());
  out.Set("data", data);
  out.Set("width", image.width);
  out.Set("height", image.height);
  out.Set("channels", image.channels);
  return out;
}

// imageInfo(bytes) -> { format, width, height, channels }: the header only.
Napi::Value image_info(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const std::vector<uint8_t> bytes = bytes_arg(info, 0, "image");
    const image::ImageInfo i = image::probe(bytes.data(), bytes.size());
    auto out = Napi::Object::New(info.Env());
    out.Set("format", i.format == image::Format::Jpeg ? "jpeg" : "png");
    out.Set("width", i.width);
    out.Set("height", i.height);
    out.Set("channels", i.channels);
    return out;
  });
}

// decodeImage(bytes, { channels, scaleEighths }) -> Promise<{ data, width, height, channels }>
Napi::Value decode_image(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    std::vector<uint8_t> bytes = bytes_arg(info, 0, "image");
    auto o = options_arg(info, 1, "decode options");
    image::DecodeRequest request;
    request.channels = static_cast<int>(integer_field(o, "channels", 1, 3));
    request.scale_eighths = static_cast<int>(optional_integer(o, "scaleEighths", 0, 0, 8));
    return AsyncTask::run(info.Env(), "bnn.decodeImage", [bytes = std::move(bytes), request]() -> AsyncTask::Convert {
      auto decoded = std::make_shared<image::Decoded>(image::decode(bytes.data(), bytes.size(), request));
      return [decoded](Napi::Env env) -> Napi::Value { return image_to_js(env, decoded->image); };
    });
  });
}

// renderImage(bytes, transform, { seed, epoch, sample }) -> Promise<Uint8Array> (size x size x channels)
Napi::Value render_image(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    std::vector<uint8_t> bytes = bytes_arg(info, 0, "image");
    const image::TransformSpec spec = parse_transform(options_arg(info, 1, "transform"));
    auto o = options_arg(info, 2, "draw");
    const auto seed = static_cast<uint64_t>(integer_field(o, "seed", 0, kMaxSafeInteger));
    const int64_t epoch = integer_field(o, "epoch", 0, kMaxSafeInteger);
    const int64_t sample = integer_field(o, "sample", 0, kMaxSafeInteger);
    return AsyncTask::run(info.Env(), "bnn.renderImage", [bytes = std::move(bytes), spec, seed, epoch, sample]() -> AsyncTask::Convert {
      auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(spec.size) * spec.size * spec.channels);
      image::render(bytes.data(), bytes.size(), spec, seed, epoch, sample, out->data());
      return [out](Napi::Env env) -> Napi::Value {
        auto a = Napi::Uint8Array::New(env, out->size());
        std::copy(out->begin(), out->end(), a.Data());
        return a;
      };
    });
  });
}

// storeInfo(path) -> { size, classNames, classCounts, maxSide }: opens and checks the whole index.
Napi::Value store_info(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const std::string path = string_arg(info, 0, "store path");
    return AsyncTask::run(info.Env(), "bnn.storeInfo", [path]() -> AsyncTask::Convert {
      std::shared_ptr<const image::Store> store = image::Store::open(path);
      return [store](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("size", static_cast<double>(store->size()));
        auto names = Napi::Array::New(env, store->class_names().size());
        auto counts = Napi::Array::New(env, store->class_counts().size());
        for (size_t i = 0; i < store->class_names().size(); ++i) {
          names.Set(static_cast<uint32_t>(i), store->class_names()[i]);
          counts.Set(static_cast<uint32_t>(i), static_cast<double>(store->class_counts()[i]));
        }
        out.Set("classNames", names);
        out.Set("classCounts", counts);
        out.Set("maxSide", store->max_side());
        return out;
      };
    });
  });
}

// The store being written by `bnn prepare`: files go in in chunks (each a Promise, so progress
// can be shown between them), and finish() publishes the store atomically.
class StoreWriterHandle : public Napi::ObjectWrap<StoreWriterHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "StoreWriterHandle",
                       {
                           InstanceMethod<&StoreWriterHandle::add_files>("addFiles"),
                           InstanceMethod<&StoreWriterHandle::finish>("finish"),
                           InstanceMethod<&StoreWriterHandle::dispose>("dispose"),
                       });
  }

  // new StoreWriterHandle(path, classNames, { maxSide, rawMaxSide, quality, workers })
  explicit StoreWriterHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreWriterHandle>(info) {
    guard(info.Env(), [&] {
      const std::string path = string_arg(info, 0, "store path");
      std::vector<std::string> class_names = to_strings(info.Env(), arg(info, 1), "classNames", 65536);
      auto o = options_arg(info, 2, "prepare options");
      state_ = std::make_shared<State>();
      state_->options.max_side = static_cast<int>(integer_field(o, "maxSide", 8, 65500));
      state_->options.raw_max_side = static_cast<int>(integer_field(o, "rawMaxSide", 0, 65500));
      state_->options.quality = static_cast<int>(integer_field(o, "quality", 1, 100));
      const int workers = static_cast<int>(integer_field(o, "workers", 0, 1024));
      state_->pool = std::make_unique<data::WorkerPool>(workers > 0 ? workers : data::default_worker_count());
      state_->writer = std::make_unique<image::StoreWriter>(path, std::move(class_names), state_->options.max_side);
    });
  }

 private:
  struct State {
    image::PrepareOptions options;
    std::unique_ptr<data::WorkerPool> pool;
    std::unique_ptr<image::StoreWriter> writer;
  };

  std::shared_ptr<State> state() const {
    if (!state_) fail(ErrorKind::Disposed, "this store writer has been finished or disposed");
    return state_;
  }

  // addFiles(paths, labels, firstPosition) -> Promise<[index, reason][]>: the files that could not be read.
  Napi::Value add_files(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto s = state();
      std::vector<std::string> paths = to_strings(env, arg(info, 0), "paths");
      if (!arg(info, 1).IsArray()) throw_type_error(env, "labels must be an array of integers");
      auto la = info[1].As<Napi::Array>();
      if (la.Length() != paths.size()) throw_range_error(env, "addFiles needs one label per path");
      std::vector<uint32_t> labels;
      for (uint32_t i = 0; i < la.Length(); ++i) {
        labels.push_back(static_cast<uint32_t>(to_integer(env, la.Get(i), "labels[" + std::to_string(i) + "]", 0, 65535)));
      }
      const auto first = static_cast<uint64_t>(integer_arg(info, 2, "firstPosition"));
      return AsyncTask::run(env, "bnn.storeAddFiles", [s, paths = std::move(paths), labels = std::move(labels), first]() -> AsyncTask::Convert {
        auto problems = std::make_shared<std::vector<std::string>>(paths.size());
        s->pool->parallel_for(static_cast<int64_t>(paths.size()), [&](int64_t i) {
          const auto k = static_cast<size_t>(i);
          try {
            const std::vector<uint8_t> bytes = data::read_file(paths[k], uint64_t{1} << 28);
            s->writer->add(first + k, image::prepare_record(bytes.data(), bytes.size(), s->options, paths[k]), labels[k]);
          } catch (const Error& e) {
            if (e.kind() != ErrorKind::Io) throw;
            (*problems)[k] = e.what();
          }
        });
        return [problems](Napi::Env env) -> Napi::Value {
          auto out = Napi::Array::New(env);
          uint32_t n = 0;
          for (size_t i = 0; i < problems->size(); ++i) {
            if ((*problems)[i].empty()) continue;
            auto pair = Napi::Array::New(env, 2);
            pair.Set(0u, static_cast<double>(i));
            pair.Set(1u, (*problems)[i]);
            out.Set(n++, pair);
          }
          return out;
        };
      });
    });
  }

  // finish() -> Promise<number>: the records written; the store exists under its name from now.
  Napi::Value finish(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto s = state();
      state_.reset();
      return AsyncTask::run(info.Env(), "bnn.storeFinish", [s]() -> AsyncTask::Convert {
        const size_t written = s->writer->finish();
        return [written](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(written)); };
      });
    });
  }

  // Drops an unfinished store (its partial file is removed once no chunk still uses it).
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    state_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<State> state_;
};

}  // namespace

image::TransformSpec parse_transform(const Napi::Object& o) {
  image::TransformSpec s;
  const std::string mode = string_field(o, "mode");
  if (mode != "train" && mode != "eval") throw_range_error(o.Env(), "transform mode must be 'train' or 'eval', got '" + mode + "'");
  s.mode = mode == "train" ? image::TransformMode::Train : image::TransformMode::Eval;
  s.channels = static_cast<int>(integer_field(o, "channels", 1, 3));
  s.size = static_cast<int>(integer_field(o, "size", 1, 8192));
  s.scale_min = optional_number(o, "scaleMin", s.scale_min);
  s.scale_max = optional_number(o, "scaleMax", s.scale_max);
  s.ratio_min = optional_number(o, "ratioMin", s.ratio_min);
  s.ratio_max = optional_number(o, "ratioMax", s.ratio_max);
  s.hflip = optional_bool(o, "hflip", s.hflip);
  s.rotation_degrees = optional_number(o, "rotation", s.rotation_degrees);
  s.jitter.brightness = optional_number(o, "brightness", 0);
  s.jitter.contrast = optional_number(o, "contrast", 0);
  s.jitter.saturation = optional_number(o, "saturation", 0);
  s.jitter.hue = optional_number(o, "hue", 0);
  s.lighting_std = optional_number(o, "lighting", 0);
  s.resize = static_cast<int>(optional_integer(o, "resize", s.resize, 1, 65500));
  s.dct_scaling = optional_bool(o, "dctScaling", s.dct_scaling);
  image::validate(s);
  return s;
}

// imageKernels() -> 'avx2' | 'baseline': which resize kernels this process runs (BNN_IMAGE_SIMD=0
// forces the baseline), so tests can prove they covered both.
Napi::Value image_kernels(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), image::resize_uses_avx2() ? "avx2" : "baseline");
}

void init_image(Napi::Env env, Napi::Object exports) {
  exports.Set("imageKernels", Napi::Function::New<image_kernels>(env, "imageKernels"));
  exports.Set("imageInfo", Napi::Function::New<image_info>(env, "imageInfo"));
  exports.Set("decodeImage", Napi::Function::New<decode_image>(env, "decodeImage"));
  exports.Set("renderImage", Napi::Function::New<render_image>(env, "renderImage"));
  exports.Set("storeInfo", Napi::Function::New<store_info>(env, "storeInfo"));
  exports.Set("StoreWriterHandle", StoreWriterHandle::define(env));
}

}  // namespace bnn::addon
