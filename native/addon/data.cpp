// Binding for native/data: dataset, loader and epoch handles. Converts and dispatches only.
//
// Batches reach JS through AsyncTask (one Promise per next()), not a ThreadSafeFunction pushing
// them: the consumer pulls, which is exactly an async iterator's shape and gives backpressure for
// free; the producer thread has already built the batch, so the libuv worker only hands it over
// (it waits only when the consumer outruns the producer); and there is no second cross-thread
// mechanism whose lifetime must be tied to the environment's teardown.
#include "addon/data.h"

#include <cmath>
#include <memory>

#include <ATen/ATen.h>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/errors.h"
#include "addon/image.h"
#include "addon/tensor.h"
#include "core/device.h"
#include "core/errors.h"
#include "data/dataset.h"
#include "data/epoch_stream.h"
#include "data/image_source.h"
#include "data/loader.h"

namespace bnn::addon {

namespace {

// ---- argument helpers ---------------------------------------------------------------------

Napi::Array numbers_to_js(Napi::Env env, const std::vector<double>& values) {
  auto a = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) a.Set(static_cast<uint32_t>(i), values[i]);
  return a;
}

Napi::Array strings_to_js(Napi::Env env, const std::vector<std::string>& values) {
  auto a = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) a.Set(static_cast<uint32_t>(i), values[i]);
  return a;
}

// [[path, reason], ...]: files left out of an image dataset.
Napi::Array string_pairs_to_js(Napi::Env env, const std::vector<std::pair<std::string, std::string>>& pairs) {
  auto a = Napi::Array::New(env, pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(0u, pairs[i].first);
    pair.Set(1u, pairs[i].second);
    a.Set(static_cast<uint32_t>(i), pair);
  }
  return a;
}

}  // namespace

// ---- DatasetHandle --------------------------------------------------------------------------

class DatasetHandle : public Napi::ObjectWrap<DatasetHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "DatasetHandle",
                       {
                           InstanceMethod<&DatasetHandle::info>("info"),
                           InstanceMethod<&DatasetHandle::images>("images"),
                           InstanceMethod<&DatasetHandle::labels>("labels"),
                           InstanceMethod<&DatasetHandle::take>("take"),
                           InstanceMethod<&DatasetHandle::skipped_while_reading>("skippedWhileReading"),
                           InstanceMethod<&DatasetHandle::split_validation>("splitValidation"),
                           InstanceMethod<&DatasetHandle::dispose>("dispose"),
                           InstanceMethod<&DatasetHandle::is_disposed>("isDisposed"),
                       });
  }

  static Napi::Object wrap(Napi::Env env, std::shared_ptr<const data::Dataset> dataset) {
    Napi::Object obj = addon_data(env).dataset_constructor.New({});
    Unwrap(obj)->reset(std::move(dataset));
    return obj;
  }

  static std::shared_ptr<const data::Dataset> unwrap(Napi::Env env, const Napi::Value& value, const char* what) {
    return unwrap_instance<DatasetHandle>(env, value, addon_data(env).dataset_constructor, what, "a Dataset")->dataset();
  }

  explicit DatasetHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DatasetHandle>(info) {}
  ~DatasetHandle() override { reset(nullptr); }

  std::shared_ptr<const data::Dataset> dataset() const {
    if (!dataset_) fail(ErrorKind::Disposed, "this dataset has been disposed and can no longer be used");
    return dataset_;
  }

 private:
  void reset(std::shared_ptr<const data::Dataset> dataset) {
    if (accounted_bytes_ != 0) Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_bytes_);
    accounted_bytes_ = 0;
    dataset_ = std::move(dataset);
    if (dataset_) {
      // Tell V8 how much native memory this small object holds, so GC pressure is honest.
      accounted_bytes_ = static_cast<int64_t>((dataset_->images.defined() ? dataset_->images.nbytes() : 0) + dataset_->labels.nbytes());
      Napi::MemoryManagement::AdjustExternalMemory(Env(), accounted_bytes_);
    }
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto d = dataset();
      auto o = Napi::Object::New(env);
      o.Set("name", d->name);
      o.Set("size", static_cast<double>(d->size()));
      o.Set("shape", shape_to_js(env, {d->channels(), d->height(), d->width()}));
      o.Set("numClasses", static_cast<double>(d->num_classes()));
      o.Set("classNames", strings_to_js(env, d->class_names));
      o.Set("mean", numbers_to_js(env, d->mean));
      o.Set("std", numbers_to_js(env, d->std));
      o.Set("streamed", d->streamed());
      return o;
    });
  }

  // Views sharing the dataset's memory (no API mutates a tensor in place).
  Napi::Value images(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto d = dataset();
      if (d->streamed()) {
        fail(ErrorKind::InvalidArgument, "this dataset streams its images from " + d->source->origin() +
                                             " through its transform: it has no images tensor (iterate a DataLoader over it)");
      }
      return TensorHandle::wrap(info.Env(), d->images);
    });
  }

  Napi::Value labels(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return TensorHandle::wrap(info.Env(), dataset()->labels); });
  }

  // [[path, reason], ...]: files a skipBad image dataset found corrupt while decoding them.
  Napi::Value skipped_while_reading(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto d = dataset();
      return string_pairs_to_js(env, d->source ? d->source->skipped_while_reading() : std::vector<std::pair<std::string, std::string>>{});
    });
  }

  Napi::Value take(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto d = dataset();
      return wrap(info.Env(), data::take(*d, integer_arg(info, 0, "n", 1)));
    });
  }

  Napi::Value split_validation(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto d = dataset();
      const int64_t size = integer_arg(info, 0, "validation size", 1);
      const auto seed = static_cast<uint64_t>(integer_arg(info, 1, "seed"));
      data::ValidationSplit split = data::split_validation(*d, size, seed);
      auto out = Napi::Array::New(env, 2);
      out.Set(0u, wrap(env, split.train));
      out.Set(1u, wrap(env, split.validation));
      return out;
    });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    reset(nullptr);
    return info.Env().Undefined();
  }

  Napi::Value is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !dataset_); }

  std::shared_ptr<const data::Dataset> dataset_;
  int64_t accounted_bytes_ = 0;
};

// ---- EpochHandle ----------------------------------------------------------------------------

class EpochHandle : public Napi::ObjectWrap<EpochHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "EpochHandle",
                       {
                           InstanceMethod<&EpochHandle::next>("next"),
                           InstanceMethod<&EpochHandle::close>("close"),
                           InstanceMethod<&EpochHandle::is_closed>("isClosed"),
                       });
  }

  static Napi::Object wrap(Napi::Env env, std::shared_ptr<data::EpochStream> stream) {
    Napi::Object obj = addon_data(env).epoch_constructor.New({});
    Unwrap(obj)->stream_ = std::move(stream);
    return obj;
  }

  explicit EpochHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EpochHandle>(info) {}
  // The GC's safety net: stops and joins the producer if JS never closed the epoch.
  ~EpochHandle() override { shut(); }

 private:
  void shut() {
    if (!stream_) return;
    stream_->close();
    stream_.reset();
  }

  Napi::Value next(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      if (!stream_) {
        auto done = Napi::Promise::Deferred::New(env);
        done.Resolve(env.Null());
        return done.Promise();
      }
      // The task holds its own reference: close() meanwhile wakes it (it resolves null) and the
      // stream is freed by whichever side lets go last.
      std::shared_ptr<data::EpochStream> stream = stream_;
      return AsyncTask::run(env, "bnn.dataNext", [stream]() -> AsyncTask::Convert {
        std::optional<data::Batch> batch = stream->next();
        if (!batch) return [](Napi::Env env) -> Napi::Value { return env.Null(); };
        return [b = std::move(*batch)](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("images", TensorHandle::wrap(env, b.images));
          o.Set("labels", TensorHandle::wrap(env, b.labels));
          o.Set("index", static_cast<double>(b.index));
          return o;
        };
      });
    });
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    shut();
    return info.Env().Undefined();
  }

  Napi::Value is_closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !stream_); }

  std::shared_ptr<data::EpochStream> stream_;
};

// ---- LoaderHandle ---------------------------------------------------------------------------

class LoaderHandle : public Napi::ObjectWrap<LoaderHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "LoaderHandle",
                       {
                           InstanceMethod<&LoaderHandle::batches_per_epoch>("batchesPerEpoch"),
                           InstanceMethod<&LoaderHandle::epoch_order>("epochOrder"),
                           InstanceMethod<&LoaderHandle::start_epoch>("startEpoch"),
                           InstanceMethod<&LoaderHandle::dispose>("dispose"),
                           InstanceMethod<&LoaderHandle::is_disposed>("isDisposed"),
                       });
  }

  // new LoaderHandle(dataset, options): options fully resolved by the TypeScript side.
  explicit LoaderHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LoaderHandle>(info) {
    guard(info.Env(), [&] {
      Napi::Env env = info.Env();
      auto dataset = DatasetHandle::unwrap(env, info.Length() > 0 ? info[0] : env.Undefined(), "dataset");
      if (info.Length() < 2 || !info[1].IsObject()) throw_type_error(env, "loader options must be an object");
      auto o = info[1].As<Napi::Object>();
      data::LoaderOptions options;
      options.batch_size = integer_field(o, "batchSize", 1, 0x7fffffff);
      options.shuffle = bool_field(o, "shuffle");
      options.drop_last = bool_field(o, "dropLast");
      options.seed = static_cast<uint64_t>(integer_field(o, "seed", 0, kMaxSafeInteger));
      options.normalize = bool_field(o, "normalize");
      options.mean = optional_numbers(o, "mean");
      options.std = optional_numbers(o, "std");
      options.augment.crop_padding = integer_field(o, "cropPadding", 0, 1024);
      options.augment.hflip = bool_field(o, "hflip");
      options.augment.rotation = optional_number(o, "rotation", 0);
      options.prefetch = integer_field(o, "prefetch", 1, 64);
      options.workers = optional_integer(o, "workers", 0, 0, 1024);
      options.shard_count = integer_field(o, "shardCount", 1, 1 << 20);
      options.shard_rank = integer_field(o, "shardRank", 0, options.shard_count - 1);
      options.shard_pad = bool_field(o, "shardPad");
      options.device = resolve_device(string_field(o, "device"));
      loader_ = std::make_shared<const data::Loader>(std::move(dataset), std::move(options));
    });
  }

 private:
  std::shared_ptr<const data::Loader> loader() const {
    if (!loader_) fail(ErrorKind::Disposed, "this data loader has been disposed and can no longer be used");
    return loader_;
  }

  Napi::Value batches_per_epoch(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), static_cast<double>(loader()->batches_per_epoch()));
    });
  }

  Napi::Value epoch_order(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const std::vector<int64_t> order = loader()->epoch_order(integer_arg(info, 0, "epoch"));
      auto out = Napi::Int32Array::New(info.Env(), order.size());
      for (size_t i = 0; i < order.size(); ++i) out[i] = static_cast<int32_t>(order[i]);  // < 2^31 (Dataset::validate)
      return out;
    });
  }

  Napi::Value start_epoch(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto l = loader();
      const int64_t epoch = integer_arg(info, 0, "epoch");
      const int64_t first = integer_arg(info, 1, "startBatch");
      return EpochHandle::wrap(info.Env(), std::make_shared<data::EpochStream>(l, epoch, first));
    });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    loader_.reset();  // running epochs keep their own reference and finish or close on their own
    return info.Env().Undefined();
  }

  Napi::Value is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !loader_); }

  std::shared_ptr<const data::Loader> loader_;
};

// ---- free functions -------------------------------------------------------------------------

namespace {

Napi::Value dataset_load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string name = string_arg(info, 0, "dataset name");
    const std::string root = string_arg(info, 1, "root");
    const data::Split split = data::parse_split(string_arg(info, 2, "split"));
    const int64_t limit = integer_arg(info, 3, "limit");
    data::dataset_spec(name);  // unknown names fail here, on the caller's stack
    return AsyncTask::run(env, "bnn.datasetLoad", [name, root, split, limit]() -> AsyncTask::Convert {
      std::shared_ptr<const data::Dataset> dataset = data::load_dataset(name, root, split, limit);
      return [dataset](Napi::Env env) -> Napi::Value { return DatasetHandle::wrap(env, dataset); };
    });
  });
}

Napi::Value dataset_from_tensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const at::Tensor& images = TensorHandle::unwrap(info, 0, "images");
    const at::Tensor& labels = TensorHandle::unwrap(info, 1, "labels");
    if (info.Length() < 3 || !info[2].IsObject()) throw_type_error(env, "dataset info must be an object");
    auto o = info[2].As<Napi::Object>();
    auto dataset = std::make_shared<data::Dataset>();
    dataset->name = string_field(o, "name");
    dataset->class_names = to_strings(env, o.Get("classNames"), "classNames", 65536);
    dataset->mean = optional_numbers(o, "mean");
    dataset->std = optional_numbers(o, "std");
    // A dataset owns its memory: later changes to the caller's tensors cannot reach a loader thread.
    dataset->images = images.detach().contiguous().clone();
    dataset->labels = labels.detach().contiguous().clone();
    dataset->validate();
    return DatasetHandle::wrap(env, dataset);
  });
}

// datasetFromImages({ kind, path, classNames, channels, transform, mean, std, skipBad, workers, name, limit })
//   -> Promise<{ dataset, skipped: [path, reason][] }>
// kind 'folder' (ImageFolder layout), 'list' (a "path label" file) or 'store' (a prepared store).
// Without a transform the images are decoded once into memory (they must share one size).
Napi::Value dataset_from_images(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (!arg(info, 0).IsObject()) throw_type_error(env, "image dataset options must be an object");
    auto o = info[0].As<Napi::Object>();
    const std::string kind = string_field(o, "kind");
    if (kind != "folder" && kind != "list" && kind != "store") throw_range_error(env, "kind must be 'folder', 'list' or 'store', got '" + kind + "'");
    const std::string path = string_field(o, "path");
    const std::string name = string_field(o, "name");
    const std::vector<std::string> class_names = to_strings(env, o.Get("classNames"), "classNames", 65536);
    const int channels = static_cast<int>(integer_field(o, "channels", 1, 3));
    if (channels == 2) throw_range_error(env, "channels must be 1 or 3");
    Napi::Value tv = o.Get("transform");
    const bool streamed = !tv.IsNull() && !tv.IsUndefined();
    image::TransformSpec spec;
    if (streamed) {
      if (!tv.IsObject()) throw_type_error(env, "transform must be an object or null");
      spec = parse_transform(tv.As<Napi::Object>());
    } else if (kind == "store") {
      throw_range_error(env, "a prepared store is read through a transform: give one");
    }
    const std::vector<double> mean = optional_numbers(o, "mean"), std = optional_numbers(o, "std");
    const bool skip_bad = bool_field(o, "skipBad");
    const int workers = static_cast<int>(integer_field(o, "workers", 0, 1024));
    const int64_t limit = integer_field(o, "limit", 0, kMaxSafeInteger);
    return AsyncTask::run(env, "bnn.datasetFromImages", [=]() -> AsyncTask::Convert {
      const int threads = workers > 0 ? workers : data::default_worker_count();
      auto dataset = std::make_shared<data::Dataset>();
      std::vector<std::pair<std::string, std::string>> skipped;
      if (kind == "store") {
        auto source = data::ImageSource::from_store(image::Store::open(path), spec);
        dataset->source = source;
      } else {
        data::ImageFiles files = kind == "folder" ? data::scan_image_folder(path) : data::read_image_list(path, class_names);
        if (limit > 0 && limit < static_cast<int64_t>(files.paths.size())) {
          // Evenly spread over the files, which are sorted by class: the first N would be a few classes.
          data::ImageFiles kept;
          kept.class_names = files.class_names;
          kept.skipped = files.skipped;
          for (int64_t k : data::spread_indices(static_cast<int64_t>(files.paths.size()), limit)) {
            kept.paths.push_back(files.paths[static_cast<size_t>(k)]);
            kept.labels.push_back(files.labels[static_cast<size_t>(k)]);
          }
          files = std::move(kept);
        }
        data::check_image_files(files, skip_bad, threads);
        skipped = files.skipped;
        if (streamed) {
          dataset->source = data::ImageSource::from_files(std::make_shared<const data::ImageFiles>(std::move(files)), spec, skip_bad);
        } else {
          dataset = data::decode_to_memory(files, channels, threads);
        }
      }
      if (dataset->source) {
        auto labels = dataset->source->labels();
        if (limit > 0 && limit < static_cast<int64_t>(labels.size())) {
          const std::vector<int64_t> picked = data::spread_indices(static_cast<int64_t>(labels.size()), limit);
          dataset->source = dataset->source->subset(picked);
          labels = dataset->source->labels();
        }
        dataset->labels = at::tensor(labels, at::TensorOptions().dtype(at::kLong));
        dataset->class_names = dataset->source->class_names();
      }
      dataset->name = name;
      if (!mean.empty() || !std.empty()) {
        dataset->mean = mean;
        dataset->std = std;
      }
      dataset->validate();
      std::shared_ptr<const data::Dataset> done = dataset;
      return [done, skipped](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("dataset", DatasetHandle::wrap(env, done));
        out.Set("skipped", string_pairs_to_js(env, skipped));
        return out;
      };
    });
  });
}

// imageFiles(kind, path, classNames) -> Promise<{ paths, labels, classNames, skipped }>: the
// files an ImageFolder or list file names, in dataset order (what `bnn prepare` writes).
Napi::Value image_files(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string kind = string_arg(info, 0, "kind");
    if (kind != "folder" && kind != "list") throw_range_error(env, "kind must be 'folder' or 'list', got '" + kind + "'");
    const std::string path = string_arg(info, 1, "path");
    const std::vector<std::string> class_names = to_strings(env, arg(info, 2), "classNames", 65536);
    return AsyncTask::run(env, "bnn.imageFiles", [kind, path, class_names]() -> AsyncTask::Convert {
      auto files = std::make_shared<data::ImageFiles>(kind == "folder" ? data::scan_image_folder(path) : data::read_image_list(path, class_names));
      return [files](Napi::Env env) -> Napi::Value {
        auto out = Napi::Object::New(env);
        auto paths = Napi::Array::New(env, files->paths.size());
        auto labels = Napi::Array::New(env, files->labels.size());
        for (size_t i = 0; i < files->paths.size(); ++i) {
          paths.Set(static_cast<uint32_t>(i), files->paths[i]);
          labels.Set(static_cast<uint32_t>(i), static_cast<double>(files->labels[i]));
        }
        out.Set("paths", paths);
        out.Set("labels", labels);
        out.Set("classNames", strings_to_js(env, files->class_names));
        out.Set("skipped", string_pairs_to_js(env, files->skipped));
        return out;
      };
    });
  });
}

Napi::Value dataset_catalog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const auto& specs = data::dataset_catalog();
    auto out = Napi::Array::New(env, specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto& s = specs[i];
      auto o = Napi::Object::New(env);
      o.Set("name", s.name);
      o.Set("shape", shape_to_js(env, {s.channels, s.height, s.width}));
      o.Set("numClasses", static_cast<double>(s.class_names.size()));
      o.Set("classNames", strings_to_js(env, s.class_names));
      o.Set("mean", numbers_to_js(env, s.mean));
      o.Set("std", numbers_to_js(env, s.std));
      o.Set("defaultRoot", s.default_root);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  });
}

}  // namespace

void init_data(Napi::Env env, Napi::Object exports) {
  Napi::Function dataset = DatasetHandle::define(env);
  Napi::Function epoch = EpochHandle::define(env);
  addon_data(env).dataset_constructor = Napi::Persistent(dataset);
  addon_data(env).epoch_constructor = Napi::Persistent(epoch);
  exports.Set("DatasetHandle", dataset);
  exports.Set("EpochHandle", epoch);
  exports.Set("LoaderHandle", LoaderHandle::define(env));
  exports.Set("datasetLoad", Napi::Function::New<dataset_load>(env, "datasetLoad"));
  exports.Set("datasetFromTensors", Napi::Function::New<dataset_from_tensors>(env, "datasetFromTensors"));
  exports.Set("datasetCatalog", Napi::Function::New<dataset_catalog>(env, "datasetCatalog"));
  exports.Set("datasetFromImages", Napi::Function::New<dataset_from_images>(env, "datasetFromImages"));
  exports.Set("imageFiles", Napi::Function::New<image_files>(env, "imageFiles"));
}

}  // namespace bnn::addon
