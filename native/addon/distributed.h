#pragma once
#include <memory>

#include <napi.h>

#include "distributed/data_parallel.h"

namespace bnn::addon {
void init_distributed(Napi::Env env, Napi::Object exports);

// The hooks behind a JS DataParallelHandle (TypeError for anything else, BNN_DISPOSED when disposed).
std::shared_ptr<distributed::DataParallel> unwrap_data_parallel(Napi::Env env, const Napi::Value& value);
}  // namespace bnn::addon
