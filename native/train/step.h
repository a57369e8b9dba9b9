#pragma once
// One training or evaluation step as a single native call: forward, loss, backward and the
// optimizer update happen here, so a batch costs one JS -> native round trip.
#include <memory>
#include <vector>

#include <torch/types.h>

#include "core/errors.h"
#include "nn/resnet.h"
#include "train/optimizer.h"

namespace bnn::train {

// Extension points of a training step, for data parallelism (distributed/data_parallel.h). The
// step calls them in this order; the defaults do nothing.
class StepHooks {
 public:
  struct Agreement {
    double loss;  // the loss the step acts on (the mean over all processes when distributed)
    bool stop;    // whether any process asked to stop after this step
  };
  virtual ~StepHooks() = default;
  virtual void before_forward() {}
  // After the loss, before backward: this process's mean loss and its stop vote.
  virtual void before_backward(double loss, bool stop) {}
  // After backward, before the optimizer update.
  virtual Agreement after_backward(double loss, bool stop) { return {loss, stop}; }
};

struct TrainStepOptions {
  double label_smoothing = 0.0;
  // Clamp the latent weights of binary convolutions to [-1, 1] after the update. Useful in the
  // binary-weight stage: weights beyond +-1 get no gradient from the straight-through estimator and
  // would otherwise be stuck there for good.
  bool clip_latent_weights = false;
  // This process's vote to stop after this step (Ctrl-C); StepResult::stop says what was agreed.
  bool stop_requested = false;
  // Data parallelism: broadcasts buffers before forward and averages gradients between backward
  // and the update. Null for a single process.
  std::shared_ptr<StepHooks> hooks;
};

struct StepResult {
  double loss = 0;      // mean loss over the batch
  int64_t correct = 0;  // top-1 hits
  int64_t count = 0;    // batch size
  bool stop = false;    // some process voted to stop after this step
};

// Thrown when the loss is NaN or infinite, before the update: the weights stay as they were.
class NonFiniteLoss : public Error {
 public:
  explicit NonFiniteLoss(double loss) : Error(ErrorKind::NonFiniteLoss, "the loss is " + std::to_string(loss)) {}
};

StepResult train_step(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                      const TrainStepOptions& options);

struct EvalResult {
  double loss_sum = 0;  // summed (not mean) cross-entropy, so batches can be added up
  int64_t correct = 0;
  int64_t count = 0;
  std::vector<int64_t> class_correct;  // per true class
  std::vector<int64_t> class_count;
};

// Inference-mode forward in the model's current mode (call eval() first for test accuracy).
EvalResult eval_step(nn::ResNet18& model, const torch::Tensor& images, const torch::Tensor& labels);

}  // namespace bnn::train
