#pragma once
// Per-environment state (worker_threads each get their own), held as Node-API instance data.
#include <napi.h>

namespace bnn::addon {

struct AddonData {
  Napi::FunctionReference tensor_constructor;
  Napi::FunctionReference model_constructor;
  Napi::FunctionReference optimizer_constructor;
  Napi::FunctionReference step_metrics_constructor;
  Napi::FunctionReference process_group_constructor;
  Napi::FunctionReference data_parallel_constructor;
  Napi::FunctionReference dataset_constructor;
  Napi::FunctionReference epoch_constructor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace bnn::addon
