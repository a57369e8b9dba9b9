#include "train/step.h"

#include <cmath>
#include <cstdlib>
#include <memory>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "nn/binary_conv2d.h"
#include "train/loss.h"

namespace bnn::train {

namespace {

void check_batch(const nn::ResNet18& model, const torch::Tensor& images, const torch::Tensor& labels) {
  model->check_input(images);
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != images.size(0)) {
    fail(ErrorKind::InvalidArgument, "labels must be [N] with N = " + std::to_string(images.size(0)) + " (the batch size), got " +
                                         (labels.defined() ? c10::str(labels.sizes()) : std::string("undefined")));
  }
}

}  // namespace

StepResult train_step(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                      const TrainStepOptions& options) {
  check_batch(model, images, labels);
  // Developer hook (bench/profile.ts): BNN_PROFILE_TRACE=<file> writes a chrome trace of the step.
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (const char* trace = std::getenv("BNN_PROFILE_TRACE")) {
    profile = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace));
  }
  optimizer.zero_grad();
  StepHooks* hooks = options.hooks.get();
  if (hooks) hooks->before_forward();
  const torch::Tensor logits = model->forward(images);
  const torch::Tensor loss = cross_entropy(logits, labels, options.label_smoothing);
  double loss_value = loss.item<double>();
  bool stop = options.stop_requested;
  if (hooks) {
    // Every process must take part in the gradient all-reduce even when its own loss is not
    // finite, or the others would wait for it; the reduced loss then carries the NaN to all of
    // them, and they all refuse the update together.
    hooks->before_backward(loss_value, stop);
    loss.backward();
    const StepHooks::Agreement agreed = hooks->after_backward(loss_value, stop);
    loss_value = agreed.loss;
    stop = agreed.stop;
    if (!std::isfinite(loss_value)) throw NonFiniteLoss(loss_value);
  } else {
    if (!std::isfinite(loss_value)) throw NonFiniteLoss(loss_value);
    loss.backward();
  }
  optimizer.step();
  if (options.clip_latent_weights) {
    torch::NoGradGuard no_grad;
    for (auto& module : model->modules(false)) {
      if (auto* conv = module->as<nn::BinaryConv2dImpl>()) conv->weight.clamp_(-1.0, 1.0);
    }
  }
  StepResult r;
  r.loss = loss_value;
  r.stop = stop;
  {
    torch::NoGradGuard no_grad;
    r.correct = logits.argmax(1).eq(labels.to(logits.device())).sum().item<int64_t>();
  }
  r.count = images.size(0);
  return r;
}

EvalResult eval_step(nn::ResNet18& model, const torch::Tensor& images, const torch::Tensor& labels) {
  check_batch(model, images, labels);
  c10::InferenceMode inference;
  const torch::Tensor logits = model->forward(images);
  const torch::Tensor y = labels.to(logits.device());
  EvalResult r;
  r.loss_sum = cross_entropy(logits, y).item<double>() * static_cast<double>(images.size(0));
  const torch::Tensor hit = logits.argmax(1).eq(y);
  r.correct = hit.sum().item<int64_t>();
  r.count = images.size(0);
  const int64_t classes = model->config.num_classes;
  const torch::Tensor per_count = torch::bincount(y, {}, classes).cpu();
  const torch::Tensor per_correct = torch::bincount(y.masked_select(hit), {}, classes).cpu();
  r.class_count.assign(per_count.data_ptr<int64_t>(), per_count.data_ptr<int64_t>() + classes);
  r.class_correct.assign(per_correct.data_ptr<int64_t>(), per_correct.data_ptr<int64_t>() + classes);
  return r;
}

}  // namespace bnn::train
