#pragma once
// The JS handle for an at::Tensor. It owns one reference to the tensor; dispose() drops it at once
// (the JS facade calls it deterministically), and the destructor is the GC's safety net.
#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <napi.h>

namespace bnn::addon {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void init(Napi::Env env, Napi::Object exports);
  // Wraps a tensor in a new JS handle object.
  static Napi::Object wrap(Napi::Env env, at::Tensor tensor);
  // The tensor behind argument `index`, with clear TypeErrors for non-handles and disposed ones.
  static const at::Tensor& unwrap(const Napi::CallbackInfo& info, size_t index, const char* what);
  static const at::Tensor& unwrap_value(Napi::Env env, const Napi::Value& value, const char* what);
  static bool is_handle(Napi::Env env, const Napi::Value& value);
  static int64_t live_count() { return live_.load(); }

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const at::Tensor& tensor() const;

 private:
  void reset(at::Tensor tensor);
  void release();

  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value is_disposed(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value requires_grad(const Napi::CallbackInfo& info);
  Napi::Value set_requires_grad(const Napi::CallbackInfo& info);
  Napi::Value grad(const Napi::CallbackInfo& info);
  Napi::Value data(const Napi::CallbackInfo& info);
  Napi::Value item(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value backward(const Napi::CallbackInfo& info);
  Napi::Value backward_async(const Napi::CallbackInfo& info);

  at::Tensor tensor_;
  int64_t accounted_bytes_ = 0;
  static std::atomic<int64_t> live_;
};

// Turns a tensor into a JS typed array (a copy, on the CPU). Must run on the main thread.
Napi::Value tensor_to_typed_array(Napi::Env env, const at::Tensor& t);

void init_tensor_functions(Napi::Env env, Napi::Object exports);

using NamedTensorList = std::vector<std::pair<std::string, at::Tensor>>;
// [[name, TensorHandle], ...] in both directions: how state dicts cross the boundary.
Napi::Array named_tensors_to_js(Napi::Env env, const NamedTensorList& named);
NamedTensorList named_tensors_from_js(const Napi::Value& value, const char* what);

}  // namespace bnn::addon
