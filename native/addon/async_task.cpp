#include "addon/async_task.h"

#include <ATen/core/grad_mode.h>

#include "core/runtime.h"

namespace bnn::addon {

AsyncTask::AsyncTask(Napi::Env env, const char* name, Work work)
    : Napi::AsyncWorker(env, name),
      deferred_(Napi::Promise::Deferred::New(env)),
      work_(std::move(work)),
      // Grad mode is thread-local: the worker inherits the caller's, as a synchronous call would.
      grad_enabled_(at::GradMode::is_enabled()) {}

Napi::Promise AsyncTask::run(Napi::Env env, const char* name, Work work) {
  auto* task = new AsyncTask(env, name, std::move(work));  // owned by libuv; deletes itself
  auto promise = task->deferred_.Promise();
  task->Queue();
  return promise;
}

void AsyncTask::Execute() {
  try {
    init_worker_thread();
    at::AutoGradMode grad_mode(grad_enabled_);
    convert_ = work_();
  } catch (...) {
    failure_ = describe_exception(std::current_exception());
    SetError(failure_->message);
  }
  work_ = nullptr;  // release captured tensors on the worker, not later on the main thread
}

void AsyncTask::OnOK() {
  Napi::Env env = Env();
  try {
    deferred_.Resolve(convert_(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (...) {
    deferred_.Reject(make_error(env, describe_exception(std::current_exception())).Value());
  }
  convert_ = nullptr;
}

void AsyncTask::OnError(const Napi::Error& error) {
  Napi::Env env = Env();
  deferred_.Reject(failure_ ? make_error(env, *failure_).Value() : error.Value());
}

}  // namespace bnn::addon
