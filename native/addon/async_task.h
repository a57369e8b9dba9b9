#pragma once
// Runs heavy LibTorch work on a libuv worker thread and settles a Promise with the result.
// `work` runs off the main thread and must not touch JS; it returns a `convert` step that runs back
// on the main thread to build the JS value from what `work` computed.
#include <functional>
#include <optional>

#include <napi.h>

#include "addon/errors.h"

namespace bnn::addon {

class AsyncTask : public Napi::AsyncWorker {
 public:
  using Convert = std::function<Napi::Value(Napi::Env)>;
  using Work = std::function<Convert()>;

  static Napi::Promise run(Napi::Env env, const char* name, Work work);

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  AsyncTask(Napi::Env env, const char* name, Work work);

  Napi::Promise::Deferred deferred_;
  Work work_;
  Convert convert_;
  bool grad_enabled_;
  std::optional<ErrorInfo> failure_;
};

}  // namespace bnn::addon
