// Binding for native/core/runtime: versions, devices, threads, seeding, the CPU generator's state.
#include "addon/runtime.h"

#include "addon/convert.h"
#include "addon/errors.h"
#include "addon/tensor.h"
#include "core/cpu_allocator.h"
#include "core/runtime.h"

namespace bnn::addon {

namespace {

Napi::Value info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const RuntimeInfo r = runtime_info();
    auto out = Napi::Object::New(env);
    out.Set("torchVersion", r.torch_version);
    out.Set("libtorchSource", BNN_LIBTORCH_SOURCE);
    out.Set("libtorchRoot", BNN_LIBTORCH_ROOT);
    out.Set("cudaKernels", r.cuda_kernels);
    out.Set("cudaAvailable", r.cuda_available);
    out.Set("cudaDeviceCount", r.cuda_device_count);
    out.Set("numThreads", r.num_threads);
    out.Set("cpuIsa", r.cpu_isa);
    out.Set("cpuIsaSupported", r.cpu_isa_supported);
    return out;
  });
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    bnn::set_num_threads(static_cast<int>(integer_arg(info, 0, "threads", 1, 1 << 20)));
    return info.Env().Undefined();
  });
}

Napi::Value manual_seed(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    bnn::manual_seed(static_cast<uint64_t>(integer_arg(info, 0, "seed")));
    return info.Env().Undefined();
  });
}

Napi::Value set_allow_tf32(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!arg(info, 0).IsBoolean()) throw_type_error(info.Env(), "setAllowTF32(on) must be a boolean");
    bnn::set_allow_tf32(info[0].As<Napi::Boolean>());
    return info.Env().Undefined();
  });
}

Napi::Value set_cudnn_flags(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!arg(info, 0).IsObject()) throw_type_error(info.Env(), "setCudnnFlags(options) must be an object");
    const Napi::Object o = info[0].As<Napi::Object>();
    // Determinism first: it turns benchmark mode off, which an explicit benchmark flag may override.
    if (!o.Get("deterministic").IsUndefined()) bnn::set_deterministic(bool_field(o, "deterministic"));
    if (!o.Get("benchmark").IsUndefined()) bnn::set_cudnn_benchmark(bool_field(o, "benchmark"));
    auto out = Napi::Object::New(info.Env());
    out.Set("benchmark", bnn::cudnn_benchmark());
    out.Set("deterministic", bnn::deterministic());
    return out;
  });
}

Napi::Value set_fusion_flags(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!arg(info, 0).IsObject()) throw_type_error(info.Env(), "setFusionFlags(options) must be an object");
    const Napi::Object o = info[0].As<Napi::Object>();
    bnn::FusionFlags flags = bnn::fusion_flags();
    if (!o.Get("cuda").IsUndefined()) flags.cuda = bool_field(o, "cuda");
    if (!o.Get("cpuReference").IsUndefined()) flags.cpu_reference = bool_field(o, "cpuReference");
    bnn::set_fusion_flags(flags);
    auto out = Napi::Object::New(info.Env());
    out.Set("cuda", flags.cuda);
    out.Set("cpuReference", flags.cpu_reference);
    const bnn::FusionCounts counts = bnn::fusion_counts();
    out.Set("bnSignNodes", static_cast<double>(counts.bn_sign));
    out.Set("preluNodes", static_cast<double>(counts.prelu));
    return out;
  });
}

Napi::Value cuda_memory_stats(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const CudaMemoryStats s = bnn::cuda_memory_stats(static_cast<int>(integer_arg(info, 0, "device", 0, 1 << 16)));
    auto out = Napi::Object::New(info.Env());
    out.Set("allocatedBytes", static_cast<double>(s.allocated));
    out.Set("peakAllocatedBytes", static_cast<double>(s.peak_allocated));
    out.Set("reservedBytes", static_cast<double>(s.reserved));
    out.Set("peakReservedBytes", static_cast<double>(s.peak_reserved));
    return out;
  });
}

Napi::Value reset_cuda_peak_memory(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    bnn::reset_cuda_peak_memory(static_cast<int>(integer_arg(info, 0, "device", 0, 1 << 16)));
    return info.Env().Undefined();
  });
}

Napi::Value set_cuda_sync_debug_mode(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    bnn::set_cuda_sync_debug_mode(static_cast<int>(integer_arg(info, 0, "mode", 0, 2)));
    return info.Env().Undefined();
  });
}

Napi::Value cpu_rng_state(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return TensorHandle::wrap(info.Env(), bnn::cpu_rng_state()); });
}

Napi::Value set_cpu_rng_state(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    bnn::set_cpu_rng_state(TensorHandle::unwrap(info, 0, "state"));
    return info.Env().Undefined();
  });
}

Napi::Value cpu_cache_stats(const Napi::CallbackInfo& info) {
  const CpuCacheStats s = bnn::cpu_cache_stats();
  auto out = Napi::Object::New(info.Env());
  out.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  out.Set("allocatedBytes", static_cast<double>(s.allocated_bytes));
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  return out;
}

Napi::Value empty_cpu_cache(const Napi::CallbackInfo& info) {
  bnn::empty_cpu_cache();
  return info.Env().Undefined();
}

}  // namespace

void init_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New<info>(env, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New<set_num_threads>(env, "setNumThreads"));
  exports.Set("manualSeed", Napi::Function::New<manual_seed>(env, "manualSeed"));
  exports.Set("setAllowTF32", Napi::Function::New<set_allow_tf32>(env, "setAllowTF32"));
  exports.Set("setCudnnFlags", Napi::Function::New<set_cudnn_flags>(env, "setCudnnFlags"));
  exports.Set("setFusionFlags", Napi::Function::New<set_fusion_flags>(env, "setFusionFlags"));
  exports.Set("cudaMemoryStats", Napi::Function::New<cuda_memory_stats>(env, "cudaMemoryStats"));
  exports.Set("resetCudaPeakMemory", Napi::Function::New<reset_cuda_peak_memory>(env, "resetCudaPeakMemory"));
  exports.Set("setCudaSyncDebugMode", Napi::Function::New<set_cuda_sync_debug_mode>(env, "setCudaSyncDebugMode"));
  exports.Set("cpuRngState", Napi::Function::New<cpu_rng_state>(env, "cpuRngState"));
  exports.Set("setCpuRngState", Napi::Function::New<set_cpu_rng_state>(env, "setCpuRngState"));
  exports.Set("cpuCacheStats", Napi::Function::New<cpu_cache_stats>(env, "cpuCacheStats"));
  exports.Set("emptyCpuCache", Napi::Function::New<empty_cpu_cache>(env, "emptyCpuCache"));
}

}  // namespace bnn::addon
