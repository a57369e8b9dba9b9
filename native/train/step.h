#pragma once
// One training or evaluation step as a single native call: forward, loss, backward and the
// optimizer update happen here, so a batch costs one JS -> native round trip.
#include <memory>
#include <optional>
#include <vector>

#include <torch/types.h>

#include "core/errors.h"
#include "nn/resnet.h"
#include "train/mixup.h"
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

// Reduced-precision autocast of the forward pass (CUDA only). Master weights, optimizer state,
// BatchNorm statistics and the loss stay float32; float16 adds dynamic loss scaling.
enum class Precision { Float32, BFloat16, Float16 };

// Running sums of a stretch of training steps kept on the device, so a step needs no host
// synchronisation: the host reads them once per logging interval (read()). A non-finite loss or an
// out-of-range label raises a sticky device-side flag that makes every later update a no-op (the
// fused optimizer skips on it) until the host reads the flag and stops the run, naming the step.
class StepMetrics {
 public:
  struct Totals {
    double loss_sum = 0;      // sum over samples of finite per-step mean losses x batch size
    int64_t correct = 0;
    int64_t count = 0;
    int64_t steps = 0;        // steps accumulated since the last reset
    int64_t first_bad = -1;   // index (since the last reset) of the first step with a non-finite loss
    double bad_loss = 0;      // that step's loss (NaN or +-inf)
    int64_t first_bad_label = -1;  // index of the first step with a label outside [0, classes)
    int64_t skipped = 0;      // float16: updates skipped for overflowing gradients (loss scaling)
  };
  // One host synchronisation: copies the sums back.
  Totals read() const;
  void reset();

  // Used by train_step (all on the step's device).
  void ensure(const c10::Device& device);
  torch::Tensor loss_sum, correct, bad, first_bad, bad_loss, first_bad_label, skipped;
  torch::Tensor step_index;  // the device's own count of steps since the last reset
  int64_t count = 0, steps = 0;
};

// Dynamic loss scaling for float16 (as torch.amp.GradScaler): the scale doubles after `interval`
// clean steps and halves on an overflow, whose update is skipped. Device-resident; never synced.
struct LossScaler {
  torch::Tensor scale, growth_tracker;
  double growth_factor = 2.0, backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  void ensure(const c10::Device& device);
  // For checkpoints, under GradScaler's state_dict names with this prefix: `grad_scaler.scale`
  // (float32) and `grad_scaler._growth_tracker` (int32), copies on the CPU; nothing before the
  // first float16 step, so float32 and bfloat16 checkpoints are unchanged. Without them a resumed
  // float16 run would start again at 2^16 and skip updates until the scale had backed off.
  static constexpr const char* kPrefix = "grad_scaler.";
  NamedParameters state() const;
  // Restores state(); an empty list resets to the first step's defaults. Kept as numbers until the
  // next float16 step makes its tensors on that step's device with a fill, not a host-to-device
  // copy (which would wait for the GPU).
  void load_state(const NamedParameters& state);
  std::optional<double> restored_scale;
  std::optional<int64_t> restored_tracker;
};

// Knowledge distillation from a teacher network (train/loss.h's distillation_loss): the step runs
// the teacher forward in eval mode without autograd on the same batch, so its logits get no
// gradient and its BatchNorm statistics never move. The teacher must not be trained concurrently:
// the step switches it to eval mode (and leaves it there).
struct Distillation {
  std::shared_ptr<nn::ResNet18> teacher;
  double temperature = 1.0;
  double weight = 0.5;
};

// CUDA-graph capture of the sync-free step (TrainStepOptions::graph). The step's launches (forward,
// backward, loss scaling, the fused optimizer update, the device-side metrics) are recorded once
// per shape and setting and then replayed as one graph launch, which takes the CPU's per-kernel
// launch cost out of small, launch-bound steps. Each setting first runs kWarmupSteps ordinary
// steps (cuDNN's algorithm search, the optimizer's lazily made state), then one capture, then
// replays; the batch is copied into the graph's own input tensors before each replay. Anything the
// graph bakes in is in its key: the shapes, dtypes and layout of the batch, the precision, the
// learning rate, label smoothing, latent-weight clipping, the model's configuration and training
// mode, the fusion flags, and which model, optimizer state, metrics and loss scaler it writes.
// Changing any of them gives another graph (a few are kept, sharing one memory pool, so the
// shorter last batch of an epoch does not recapture the full one); loading optimizer state clears
// them. Needs StepMetrics and a CUDA model; not with mixup, distillation or data parallelism
// (their per-step host inputs cannot be baked in). After a replayed step the parameters have no
// .grad (the graph's gradient buffers are its own). A graph holds every tensor it writes, so their
// memory cannot be handed to anything else while it lives. A capture that fails leaves the
// StepGraph refusing further captures: train without it (in a new process).
class StepGraph;
constexpr int kStepGraphWarmupSteps = 3;
std::shared_ptr<StepGraph> make_step_graph();
// Frees every captured graph (the next step warms up and captures again).
void clear_step_graph(StepGraph& graph);
// Process-wide counts, so tests and benchmarks can tell replays from ordinary steps.
struct StepGraphCounts {
  uint64_t captures = 0, replays = 0, warmups = 0;
};
StepGraphCounts step_graph_counts();

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
  Precision precision = Precision::Float32;
  // Given, the step accumulates into it and never synchronises with the host; StepResult's loss
  // and correct are then NaN and -1 (read the metrics instead). Meant for CUDA; it works on the
  // CPU too (with the fused optimizer), which is how it is tested there. Not with hooks.
  std::shared_ptr<StepMetrics> metrics;
  // float16 only: the loss scale carried from step to step (made on first use when null).
  std::shared_ptr<LossScaler> scaler;
  // Mixup of this batch (train/mixup.h), inactive by default. The model sees the mixed images on
  // the device; the loss is mixup_cross_entropy; `correct` counts hits on the dominant label.
  Mixup mixup;
  // Given, the loss is distillation_loss with this teacher instead of the cross-entropy alone.
  std::shared_ptr<const Distillation> distill;
  // Given, the step is captured in a CUDA graph and replayed (see StepGraph above).
  std::shared_ptr<StepGraph> graph;
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
EvalResult eval_step(nn::ResNet18& model, const torch::Tensor& images, const torch::Tensor& labels,
                     Precision precision = Precision::Float32);

// bfloat16 autocast needs compute capability 8.0 (Ampere) or newer; float16 runs on older GPUs.
bool cuda_bf16_supported(const c10::Device& device);

}  // namespace bnn::train
