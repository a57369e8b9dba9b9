// Binding for native/distributed: a process group handle (join, broadcast, all-reduce, barrier)
// and the data-parallel hooks a training step takes. Every collective runs on a worker thread.
#include "addon/distributed.h"

#include <algorithm>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/errors.h"
#include "addon/model.h"
#include "addon/tensor.h"
#include "core/errors.h"
#include "distributed/process_group.h"

namespace bnn::addon {

namespace {

std::vector<at::Tensor> tensor_list(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Napi::Env env = info.Env();
  if (index >= info.Length() || !info[index].IsArray()) throw_type_error(env, std::string(what) + " must be an array of tensors");
  auto arr = info[index].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(TensorHandle::unwrap_value(env, arr.Get(i), what));
  return out;
}

}  // namespace

class ProcessGroupHandle : public Napi::ObjectWrap<ProcessGroupHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "ProcessGroupHandle",
                       {
                           InstanceMethod<&ProcessGroupHandle::rank>("rank"),
                           InstanceMethod<&ProcessGroupHandle::world_size>("worldSize"),
                           InstanceMethod<&ProcessGroupHandle::backend>("backend"),
                           InstanceMethod<&ProcessGroupHandle::broadcast>("broadcast"),
                           InstanceMethod<&ProcessGroupHandle::all_reduce>("allReduceSum"),
                           InstanceMethod<&ProcessGroupHandle::barrier>("barrier"),
                           InstanceMethod<&ProcessGroupHandle::dispose>("dispose"),
                       });
  }

  explicit ProcessGroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupHandle>(info) {}

  static Napi::Object wrap(Napi::Env env, std::shared_ptr<distributed::ProcessGroup> group) {
    Napi::Object obj = addon_data(env).process_group_constructor.New({});
    Unwrap(obj)->group_ = std::move(group);
    return obj;
  }

  std::shared_ptr<distributed::ProcessGroup> group() const {
    if (!group_) fail(ErrorKind::Disposed, "this process group has been disposed and can no longer be used");
    return group_;
  }

 private:
  Napi::Value rank(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group()->rank()); });
  }
  Napi::Value world_size(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), group()->world_size()); });
  }
  Napi::Value backend(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), group()->backend_name()); });
  }
  // broadcast([tensors], root) -> Promise<void>: in place.
  Napi::Value broadcast(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto g = group();
      auto tensors = tensor_list(info, 0, "tensors");
      if (info.Length() < 2 || !info[1].IsNumber()) throw_type_error(info.Env(), "root must be a rank number");
      const int root = info[1].As<Napi::Number>().Int32Value();
      return AsyncTask::run(info.Env(), "bnn.broadcast", [g, tensors, root]() -> AsyncTask::Convert {
        g->broadcast(tensors, root);
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }
  // allReduceSum([tensors]) -> Promise<void>: in place, each tensor summed across ranks.
  Napi::Value all_reduce(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto g = group();
      auto tensors = tensor_list(info, 0, "tensors");
      return AsyncTask::run(info.Env(), "bnn.allReduce", [g, tensors]() -> AsyncTask::Convert {
        g->all_reduce_sum(tensors);
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }
  Napi::Value barrier(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto g = group();
      return AsyncTask::run(info.Env(), "bnn.barrier", [g]() -> AsyncTask::Convert {
        g->barrier();
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    group_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<distributed::ProcessGroup> group_;
};

class DataParallelHandle : public Napi::ObjectWrap<DataParallelHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "DataParallelHandle",
                       {
                           InstanceMethod<&DataParallelHandle::broadcast_state>("broadcastState"),
                           InstanceMethod<&DataParallelHandle::broadcast_buffers>("broadcastBuffers"),
                           InstanceMethod<&DataParallelHandle::bucket_count>("bucketCount"),
                           InstanceMethod<&DataParallelHandle::dispose>("dispose"),
                       });
  }

  // new DataParallelHandle(model, group, { bucketCapMb, broadcastBuffers, syncBatchNorm })
  explicit DataParallelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataParallelHandle>(info) {
    guard(info.Env(), [&] {
      Napi::Env env = info.Env();
      auto model = unwrap_model(info, 0);
      auto group = unwrap_instance<ProcessGroupHandle>(env, arg(info, 1), addon_data(env).process_group_constructor, "group", "a ProcessGroup")->group();
      distributed::DataParallelOptions options;
      if (info.Length() > 2 && info[2].IsObject()) {
        auto o = info[2].As<Napi::Object>();
        Napi::Value cap = o.Get("bucketCapMb");
        if (!cap.IsUndefined()) {
          // MiB, fractional allowed (as DDP's bucket_cap_mb).
          const double mb = cap.IsNumber() ? cap.As<Napi::Number>().DoubleValue() : -1;
          if (!(mb > 0 && mb <= 65536)) throw_range_error(env, "bucketCapMb must be a number of MiB in (0, 65536]");
          options.bucket_cap_bytes = std::max<int64_t>(1, static_cast<int64_t>(mb * 1048576.0));
        }
        Napi::Value b = o.Get("broadcastBuffers");
        if (!b.IsUndefined()) {
          if (!b.IsBoolean()) throw_type_error(env, "broadcastBuffers must be a boolean");
          options.broadcast_buffers = b.As<Napi::Boolean>();
        }
        Napi::Value sync = o.Get("syncBatchNorm");
        if (!sync.IsUndefined()) {
          if (!sync.IsBoolean()) throw_type_error(env, "syncBatchNorm must be a boolean");
          options.sync_batch_norm = sync.As<Napi::Boolean>();
        }
      }
      hooks_ = std::make_shared<distributed::DataParallel>(group, *model, options);
    });
  }

  std::shared_ptr<distributed::DataParallel> hooks() const {
    if (!hooks_) fail(ErrorKind::Disposed, "this DataParallel has been disposed and can no longer be used");
    return hooks_;
  }

 private:
  Napi::Value broadcast_state(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto h = hooks();
      return AsyncTask::run(info.Env(), "bnn.broadcastState", [h]() -> AsyncTask::Convert {
        h->broadcast_state();
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }
  Napi::Value bucket_count(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(hooks()->bucket_count())); });
  }
  Napi::Value broadcast_buffers(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto h = hooks();
      return AsyncTask::run(info.Env(), "bnn.broadcastBuffers", [h]() -> AsyncTask::Convert {
        h->broadcast_buffers();
        return [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      });
    });
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    hooks_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<distributed::DataParallel> hooks_;
};

std::shared_ptr<distributed::DataParallel> unwrap_data_parallel(Napi::Env env, const Napi::Value& value) {
  return unwrap_instance<DataParallelHandle>(env, value, addon_data(env).data_parallel_constructor, "dataParallel", "a DataParallel")->hooks();
}

namespace {

// joinProcessGroup({ masterAddr, masterPort, rank, worldSize, timeoutMs, backend }) -> Promise<ProcessGroupHandle>
Napi::Value join_process_group(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw_type_error(env, "joinProcessGroup needs an options object");
    auto o = info[0].As<Napi::Object>();
    distributed::RendezvousOptions r;
    r.master_addr = string_field(o, "masterAddr");
    r.master_port = static_cast<int>(integer_field(o, "masterPort", 1, 65535));
    r.world_size = static_cast<int>(integer_field(o, "worldSize", 1, 1 << 20));
    r.rank = static_cast<int>(integer_field(o, "rank", 0, r.world_size - 1));
    r.timeout = std::chrono::milliseconds(integer_field(o, "timeoutMs", 1, 0x7fffffff));
    r.backend = string_field(o, "backend");
    return AsyncTask::run(env, "bnn.joinProcessGroup", [r]() -> AsyncTask::Convert {
      auto group = distributed::ProcessGroup::join(r);
      return [group](Napi::Env env) -> Napi::Value { return ProcessGroupHandle::wrap(env, group); };
    });
  });
}

Napi::Value distributed_backends(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("gloo", distributed::gloo_available());
  out.Set("nccl", distributed::nccl_available());
  return out;
}

}  // namespace

void init_distributed(Napi::Env env, Napi::Object exports) {
  Napi::Function pg = ProcessGroupHandle::define(env);
  addon_data(env).process_group_constructor = Napi::Persistent(pg);
  exports.Set("ProcessGroupHandle", pg);
  Napi::Function dp = DataParallelHandle::define(env);
  addon_data(env).data_parallel_constructor = Napi::Persistent(dp);
  exports.Set("DataParallelHandle", dp);
  exports.Set("joinProcessGroup", Napi::Function::New<join_process_group>(env, "joinProcessGroup"));
  exports.Set("distributedBackends", Napi::Function::New<distributed_backends>(env, "distributedBackends"));
}

}  // namespace bnn::addon
