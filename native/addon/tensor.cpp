#include "addon/tensor.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "addon/addon_data.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/errors.h"
#include "core/device.h"
#include "core/errors.h"

namespace bnn::addon {

std::atomic<int64_t> TensorHandle::live_{0};

void TensorHandle::init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "TensorHandle",
      {
          InstanceMethod<&TensorHandle::dispose>("dispose"),
          InstanceMethod<&TensorHandle::is_disposed>("isDisposed"),
          InstanceMethod<&TensorHandle::shape>("shape"),
          InstanceMethod<&TensorHandle::dtype>("dtype"),
          InstanceMethod<&TensorHandle::device>("device"),
          InstanceMethod<&TensorHandle::requires_grad>("requiresGrad"),
          InstanceMethod<&TensorHandle::set_requires_grad>("setRequiresGrad"),
          InstanceMethod<&TensorHandle::grad>("grad"),
          InstanceMethod<&TensorHandle::data>("data"),
          InstanceMethod<&TensorHandle::item>("item"),
          InstanceMethod<&TensorHandle::to>("to"),
          InstanceMethod<&TensorHandle::backward>("backward"),
          InstanceMethod<&TensorHandle::backward_async>("backwardAsync"),
      });
  addon_data(env).tensor_constructor = Napi::Persistent(ctor);
  exports.Set("TensorHandle", ctor);
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

TensorHandle::~TensorHandle() { release(); }

Napi::Object TensorHandle::wrap(Napi::Env env, at::Tensor tensor) {
  Napi::Object obj = addon_data(env).tensor_constructor.New({});
  TensorHandle::Unwrap(obj)->reset(std::move(tensor));
  return obj;
}

bool TensorHandle::is_handle(Napi::Env env, const Napi::Value& value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(addon_data(env).tensor_constructor.Value());
}

const at::Tensor& TensorHandle::unwrap(const Napi::CallbackInfo& info, size_t index, const char* what) {
  return unwrap_value(info.Env(), index < info.Length() ? info[index] : info.Env().Undefined(), what);
}

const at::Tensor& TensorHandle::unwrap_value(Napi::Env env, const Napi::Value& value, const char* what) {
  return unwrap_instance<TensorHandle>(env, value, addon_data(env).tensor_constructor, what, "a Tensor")->tensor();
}

const at::Tensor& TensorHandle::tensor() const {
  if (!tensor_.defined()) {
    fail(ErrorKind::Disposed, "this tensor has been disposed and can no longer be used");
  }
  return tensor_;
}

void TensorHandle::reset(at::Tensor tensor) {
  release();
  tensor_ = std::move(tensor);
  if (!tensor_.defined()) return;
  ++live_;
  // Tell V8 how much native memory this small JS object keeps alive, so GC pressure is honest.
  if (tensor_.device().is_cpu()) {
    accounted_bytes_ = static_cast<int64_t>(tensor_.nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(Env(), accounted_bytes_);
  }
}

void TensorHandle::release() {
  if (!tensor_.defined()) return;
  tensor_ = at::Tensor();
  --live_;
  if (accounted_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_bytes_);
    accounted_bytes_ = 0;
  }
}

Napi::Value TensorHandle::dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

Napi::Value TensorHandle::is_disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

Napi::Value TensorHandle::shape(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return shape_to_js(info.Env(), tensor().sizes()); });
}

Napi::Value TensorHandle::dtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), dtype_name(tensor().scalar_type()));
  });
}

Napi::Value TensorHandle::device(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const auto d = tensor().device();
    return Napi::String::New(info.Env(), d.is_cuda() ? "cuda:" + std::to_string(d.index() < 0 ? 0 : d.index())
                                                     : d.str());
  });
}

Napi::Value TensorHandle::requires_grad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), tensor().requires_grad()); });
}

Napi::Value TensorHandle::set_requires_grad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw_type_error(info.Env(), "requiresGrad must be a boolean");
    const at::Tensor& t = tensor();
    if (info[0].As<Napi::Boolean>() && !at::isFloatingType(t.scalar_type())) {
      fail(ErrorKind::InvalidType, std::string("only floating-point tensors can require gradients, this one is ") +
                                       dtype_name(t.scalar_type()));
    }
    at::Tensor(t).set_requires_grad(info[0].As<Napi::Boolean>());
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::grad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const at::Tensor g = tensor().grad();
    if (!g.defined()) return info.Env().Null();
    return wrap(info.Env(), g);
  });
}

Napi::Value TensorHandle::data(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return tensor_to_typed_array(info.Env(), tensor()); });
}

Napi::Value TensorHandle::item(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const at::Tensor& t = tensor();
    if (t.numel() != 1) {
      fail(ErrorKind::InvalidArgument, "item() needs a tensor with exactly one element, this one has " +
                                           std::to_string(t.numel()) + " (shape " + c10::str(t.sizes()) + ")");
    }
    return Napi::Number::New(info.Env(), t.item<double>());
  });
}

Napi::Value TensorHandle::to(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const at::Tensor& t = tensor();
    const std::string spec = string_arg(info, 0, "device");
    const c10::Device device = resolve_device(spec);
    std::optional<at::ScalarType> dtype;
    if (info.Length() > 1 && !info[1].IsUndefined()) dtype = parse_dtype(info, 1);
    return wrap(info.Env(), t.to(device, dtype.value_or(t.scalar_type())));
  });
}

namespace {

void run_backward(const at::Tensor& t, const at::Tensor& gradient) {
  if (!t.requires_grad()) {
    fail(ErrorKind::InvalidArgument, "backward() was called on a tensor that does not require gradients");
  }
  if (!gradient.defined() && t.numel() != 1) {
    fail(ErrorKind::InvalidArgument, "backward() without a gradient needs a scalar tensor, this one has shape " +
                                         c10::str(t.sizes()));
  }
  t.backward(gradient);
}

}  // namespace

Napi::Value TensorHandle::backward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    at::Tensor gradient;
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) gradient = unwrap(info, 0, "gradient");
    run_backward(tensor(), gradient);
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::backward_async(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    at::Tensor gradient;
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) gradient = unwrap(info, 0, "gradient");
    at::Tensor t = tensor();
    return AsyncTask::run(info.Env(), "bnn.backward", [t, gradient]() -> AsyncTask::Convert {
      run_backward(t, gradient);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value tensor_to_typed_array(Napi::Env env, const at::Tensor& tensor) {
  at::Tensor t = tensor.detach();
  if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);
  if (t.scalar_type() == at::kBool) t = t.to(at::kByte);
  t = t.to(at::kCPU).contiguous();
  const size_t n = static_cast<size_t>(t.numel());
  auto buffer = Napi::ArrayBuffer::New(env, t.nbytes());
  if (t.nbytes() > 0) std::memcpy(buffer.Data(), t.const_data_ptr(), t.nbytes());
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buffer, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buffer, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, n, buffer, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, buffer, 0);
    case at::kByte: return Napi::Uint8Array::New(env, n, buffer, 0);
    default:
      fail(ErrorKind::InvalidType, std::string("cannot read a tensor of dtype ") + dtype_name(t.scalar_type()));
  }
}

Napi::Array named_tensors_to_js(Napi::Env env, const NamedTensorList& named) {
  auto out = Napi::Array::New(env, named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(0u, named[i].first);
    pair.Set(1u, TensorHandle::wrap(env, named[i].second));
    out.Set(static_cast<uint32_t>(i), pair);
  }
  return out;
}

NamedTensorList named_tensors_from_js(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) throw_type_error(env, std::string(what) + " takes an array of [name, Tensor] pairs");
  auto entries = value.As<Napi::Array>();
  NamedTensorList out;
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    Napi::Value e = entries.Get(i);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsString() ||
        !TensorHandle::is_handle(env, e.As<Napi::Array>().Get(1u))) {
      throw_type_error(env, std::string(what) + ": entry " + std::to_string(i) + " must be [name, Tensor]");
    }
    auto pair = e.As<Napi::Array>();
    out.emplace_back(pair.Get(0u).As<Napi::String>().Utf8Value(), TensorHandle::Unwrap(pair.Get(1u).As<Napi::Object>())->tensor());
  }
  return out;
}

// ---- free functions: creation and the few ops tests and examples need ----------------------

namespace {

Napi::Value from_data(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      throw_type_error(env, "data must be a Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array");
    }
    auto array = info[0].As<Napi::TypedArray>();
    at::ScalarType source;
    switch (array.TypedArrayType()) {
      case napi_float32_array: source = at::kFloat; break;
      case napi_float64_array: source = at::kDouble; break;
      case napi_bigint64_array: source = at::kLong; break;
      case napi_int32_array: source = at::kInt; break;
      case napi_uint8_array: source = at::kByte; break;
      default:
        throw_type_error(env, "data must be a Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array");
    }
    std::vector<int64_t> shape = shape_arg(info, 1);
    int64_t expected = 1;
    for (int64_t d : shape) expected *= d;  // shape_arg bounds each dim and the product
    if (static_cast<size_t>(expected) != array.ElementLength()) {
      fail(ErrorKind::InvalidArgument, "shape " + c10::str(c10::IntArrayRef(shape)) + " holds " +
                                           std::to_string(expected) + " elements but the data has " +
                                           std::to_string(array.ElementLength()));
    }
    std::optional<at::ScalarType> dtype;
    if (info.Length() > 2 && !info[2].IsUndefined()) dtype = parse_dtype(info, 2);
    const c10::Device device = resolve_device(info.Length() > 3 && !info[3].IsUndefined() ? string_arg(info, 3, "device") : "cpu");
    const bool requires_grad = info.Length() > 4 && info[4].ToBoolean();
    // Copy out of the JS buffer: the tensor must not alias memory the GC or user code can change.
    void* base = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    at::Tensor t = torch::from_blob(base, shape, at::TensorOptions().dtype(source)).clone();
    t = t.to(device, dtype.value_or(source));
    if (requires_grad) {
      if (!at::isFloatingType(t.scalar_type())) fail(ErrorKind::InvalidType, "only floating-point tensors can require gradients");
      t.set_requires_grad(true);
    }
    return TensorHandle::wrap(env, t);
  });
}

Napi::Value create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string kind = string_arg(info, 0, "kind");
    std::vector<int64_t> shape = shape_arg(info, 1);
    const at::ScalarType dtype = info.Length() > 2 && !info[2].IsUndefined() ? parse_dtype(info, 2) : at::kFloat;
    const c10::Device device = resolve_device(info.Length() > 3 && !info[3].IsUndefined() ? string_arg(info, 3, "device") : "cpu");
    const bool requires_grad = info.Length() > 4 && info[4].ToBoolean();
    const auto options = at::TensorOptions().dtype(dtype).device(device);
    at::Tensor t;
    if (kind == "zeros") t = torch::zeros(shape, options);
    else if (kind == "ones") t = torch::ones(shape, options);
    else if (kind == "rand" || kind == "randn") {
      if (!at::isFloatingType(dtype)) fail(ErrorKind::InvalidType, kind + " needs a floating-point dtype");
      t = kind == "rand" ? torch::rand(shape, options) : torch::randn(shape, options);
    } else fail(ErrorKind::InvalidArgument, "unknown tensor constructor '" + kind + "'");
    if (requires_grad) {
      if (!at::isFloatingType(dtype)) fail(ErrorKind::InvalidType, "only floating-point tensors can require gradients");
      t.set_requires_grad(true);
    }
    return TensorHandle::wrap(env, t);
  });
}

Napi::Value unary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const at::Tensor& t = TensorHandle::unwrap(info, 0, "input");
    const std::string op = string_arg(info, 1, "op");
    at::Tensor r;
    if (op == "neg") r = t.neg();
    else if (op == "abs") r = t.abs();
    else if (op == "sign") r = t.sign();
    else if (op == "relu") r = t.relu();
    else if (op == "exp") r = t.exp();
    else if (op == "log") r = t.log();
    else if (op == "sqrt") r = t.sqrt();
    else if (op == "square") r = t.square();
    else if (op == "sigmoid") r = t.sigmoid();
    else if (op == "tanh") r = t.tanh();
    else if (op == "sum") r = t.sum();
    else if (op == "mean") r = t.mean();
    else if (op == "max") r = t.max();
    else if (op == "min") r = t.min();
    else if (op == "clone") r = t.clone();
    else if (op == "detach") r = t.detach();
    else if (op == "contiguous") r = t.contiguous();
    else if (op == "t") {
      if (t.dim() != 2) fail(ErrorKind::InvalidArgument, "t() needs a 2-D tensor, got shape " + c10::str(t.sizes()));
      r = t.t();
    }
    else fail(ErrorKind::InvalidArgument, "unknown unary op '" + op + "'");
    return TensorHandle::wrap(env, r);
  });
}

Napi::Value binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const at::Tensor& a = TensorHandle::unwrap(info, 0, "input");
    const std::string op = string_arg(info, 2, "op");
    if (info.Length() > 1 && info[1].IsNumber()) {
      const double s = info[1].As<Napi::Number>().DoubleValue();
      at::Tensor r;
      if (op == "add") r = a.add(s);
      else if (op == "sub") r = a.sub(s);
      else if (op == "mul") r = a.mul(s);
      else if (op == "div") r = a.div(s);
      else if (op == "pow") r = a.pow(s);
      else fail(ErrorKind::InvalidArgument, "op '" + op + "' does not take a number");
      return TensorHandle::wrap(env, r);
    }
    const at::Tensor& b = TensorHandle::unwrap(info, 1, "other");
    at::Tensor r;
    if (op == "add") r = a.add(b);
    else if (op == "sub") r = a.sub(b);
    else if (op == "mul") r = a.mul(b);
    else if (op == "div") r = a.div(b);
    else if (op == "pow") r = a.pow(b);
    else if (op == "matmul") r = a.matmul(b);
    else if (op == "maximum") r = at::maximum(a, b);
    else if (op == "minimum") r = at::minimum(a, b);
    else fail(ErrorKind::InvalidArgument, "unknown binary op '" + op + "'");
    return TensorHandle::wrap(env, r);
  });
}

Napi::Value reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const at::Tensor& t = TensorHandle::unwrap(info, 0, "input");
    return TensorHandle::wrap(env, t.reshape(shape_arg(info, 1, /*allow_infer=*/true)));
  });
}

Napi::Value live_tensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(TensorHandle::live_count()));
}

}  // namespace

void init_tensor_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("tensorFromData", Napi::Function::New<from_data>(env, "tensorFromData"));
  exports.Set("tensorCreate", Napi::Function::New<create>(env, "tensorCreate"));
  exports.Set("tensorUnary", Napi::Function::New<unary>(env, "tensorUnary"));
  exports.Set("tensorBinary", Napi::Function::New<binary>(env, "tensorBinary"));
  exports.Set("tensorReshape", Napi::Function::New<reshape>(env, "tensorReshape"));
  exports.Set("liveTensors", Napi::Function::New<live_tensors>(env, "liveTensors"));
}

}  // namespace bnn::addon
