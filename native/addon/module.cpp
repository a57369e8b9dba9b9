// Registers the binding's pieces. Each file under native/addon/ adapts one core concept.
#include <napi.h>

#include "addon/addon_data.h"
#include "addon/binarize.h"
#include "addon/data.h"
#include "addon/distributed.h"
#include "addon/image.h"
#include "addon/loss.h"
#include "addon/mixup.h"
#include "addon/model.h"
#include "addon/runtime.h"
#include "addon/tensor.h"
#include "addon/train.h"
#include "core/cpu_allocator.h"
#include "core/runtime.h"

namespace bnn::addon {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  install_caching_cpu_allocator();
  // cuDNN benchmark mode on by default: training repeats fixed shapes (setCudnnOptions turns it off).
  set_cudnn_benchmark(true);
  env.SetInstanceData<AddonData>(new AddonData());
  TensorHandle::init(env, exports);
  init_tensor_functions(env, exports);
  init_binarize(env, exports);
  init_runtime(env, exports);
  init_model(env, exports);
  init_loss(env, exports);
  init_train(env, exports);
  init_mixup(env, exports);
  init_data(env, exports);
  init_distributed(env, exports);
  init_image(env, exports);
  return exports;
}

}  // namespace bnn::addon

static Napi::Object InitBnnTorch(Napi::Env env, Napi::Object exports) { return bnn::addon::init(env, exports); }

NODE_API_MODULE(bnn_torch, InitBnnTorch)
