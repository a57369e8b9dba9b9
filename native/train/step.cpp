#include "train/step.h"

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>

#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_amp_update_scale.h>
#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#ifdef BNN_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/core/CachingHostAllocator.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "core/errors.h"
#include "core/runtime.h"
#include "nn/binary_conv2d.h"
#include "train/loss.h"
#include "train/mixup.h"

namespace bnn::train {

namespace {

void check_batch(const nn::ResNet18& model, const torch::Tensor& images, const torch::Tensor& labels) {
  model->check_input(images);
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != images.size(0)) {
    fail(ErrorKind::InvalidArgument, "labels must be [N] with N = " + std::to_string(images.size(0)) + " (the batch size), got " +
                                         (labels.defined() ? c10::str(labels.sizes()) : std::string("undefined")));
  }
}

// Autocast of one forward pass, restoring the thread's previous autocast state on exit (the step
// runs on a pool thread that other work shares). Inactive for float32.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const c10::Device& device) {
    if (precision == Precision::Float32) return;
    if (!device.is_cuda()) fail(ErrorKind::InvalidArgument, "reduced precision (autocast) needs a CUDA device; this model is on " + device.str());
    active_ = true;
    was_enabled_ = at::autocast::is_autocast_enabled(c10::DeviceType::CUDA);
    was_dtype_ = at::autocast::get_autocast_dtype(c10::DeviceType::CUDA);
    at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, true);
    at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, precision == Precision::BFloat16 ? at::kBFloat16 : at::kHalf);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!active_) return;
    // The weight casts are cached while autocast is on; drop them, as torch.autocast's exit does.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, was_enabled_);
    at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, was_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kHalf;
};

void check_teacher(const nn::ResNet18& model, const Distillation& d, const torch::Tensor& images) {
  if (!d.teacher) fail(ErrorKind::InvalidArgument, "distillation needs a teacher model");
  if (d.teacher->get() == model.get()) fail(ErrorKind::InvalidArgument, "distillation: the teacher must be another model than the student");
  check_distillation(d.temperature, d.weight);
  const nn::ResNet18& teacher = *d.teacher;
  if (teacher->config.num_classes != model->config.num_classes) {
    fail(ErrorKind::InvalidArgument, "distillation: the teacher has " + std::to_string(teacher->config.num_classes) + " classes, the student " +
                                         std::to_string(model->config.num_classes));
  }
  const c10::Device device = model->conv1->weight.device();
  if (teacher->conv1->weight.device() != device) {
    fail(ErrorKind::InvalidArgument, "distillation: the teacher is on " + teacher->conv1->weight.device().str() + ", the student on " + device.str());
  }
  teacher->check_input(images);
}

// The teacher's logits for the batch: eval mode (running statistics, which it therefore never
// updates), no autograd (its weights get no gradient and nothing of it is kept for backward),
// float32 for the loss. Under the step's autocast, as the student's forward.
torch::Tensor teacher_logits(const Distillation& d, const torch::Tensor& images, Precision precision) {
  nn::ResNet18 teacher = *d.teacher;
  teacher->eval();
  torch::NoGradGuard no_grad;
  AutocastScope autocast(precision, teacher->conv1->weight.device());
  return teacher->forward(images).to(torch::kFloat);
}

void check_precision(const nn::ResNet18& model, Precision precision) {
  if (precision == Precision::Float32) return;
  const c10::Device device = model->conv1->weight.device();
  if (!device.is_cuda()) fail(ErrorKind::InvalidArgument, "reduced precision (autocast) needs a CUDA device; this model is on " + device.str());
  if (precision == Precision::BFloat16 && !cuda_bf16_supported(device)) {
    fail(ErrorKind::InvalidArgument, "this GPU has no bfloat16 support (compute capability 8.0 or newer); use precision 'float16'");
  }
}

// The device work of the sync-free step (StepMetrics): as train_step below but every check and
// sum stays on the device; the step's index is a device counter too, so the whole of it can be
// captured in a CUDA graph and replayed (StepGraph). The host counters are the caller's.
void device_step_body(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                      const TrainStepOptions& options) {
  const c10::Device device = model->conv1->weight.device();
  StepMetrics& m = *options.metrics;
  const int64_t classes = model->config.num_classes;
  const torch::Tensor& index = m.step_index;
  // Labels: an out-of-range label would trip a device-side assert inside cross-entropy, which
  // poisons the CUDA context. Checked on the host when they are there (free), else flagged on the
  // device and clamped so the kernel stays in range; the flag skips the update and stops the run.
  torch::Tensor y = labels;
  torch::Tensor bad_label;
  if (labels.device().is_cpu()) {
    if (labels.numel() > 0) {
      const auto [lo, hi] = at::aminmax(labels);
      const int64_t min = lo.item<int64_t>(), max = hi.item<int64_t>();
      if (min < 0 || max >= classes) {
        fail(ErrorKind::InvalidArgument, "cross_entropy: labels must be in [0, " + std::to_string(classes - 1) + "], found " +
                                             std::to_string(min < 0 ? min : max));
      }
    }
    y = labels.to(device, /*non_blocking=*/true);
  } else {
    bad_label = y.lt(0).logical_or(y.ge(classes)).any();
    y = y.clamp(0, classes - 1);
  }
  optimizer.zero_grad();
  // The mixing's permutation (drawn on the host) goes to the device once, from pinned memory and
  // without a blocking copy: a blocking copy, or an asynchronous one from pageable memory, waits
  // for the stream.
  Mixup mixup = options.mixup;
  if (mixup.active() && mixup.index.device() != device) {
    const torch::Tensor host = device.is_cuda() && mixup.index.device().is_cpu() ? mixup.index.pin_memory() : mixup.index;
    mixup.index = host.to(device, /*non_blocking=*/true);
  }
  const torch::Tensor y_b = mixup.active() ? y.index_select(0, mixup.index) : torch::Tensor();
  const torch::Tensor inputs = mixup.active() ? mix_images(images, mixup) : images;
  torch::Tensor logits;
  {
    AutocastScope autocast(options.precision, device);
    logits = model->forward(inputs);
  }
  const auto ce = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing);
  const torch::Tensor logits_f = logits.to(torch::kFloat);  // once: under autocast each .to is a copy
  torch::Tensor loss = mixup.active() ? torch::nn::functional::cross_entropy(logits_f, y, ce) * mixup.lambda +
                                            torch::nn::functional::cross_entropy(logits_f, y_b, ce) * (1.0 - mixup.lambda)
                                      : torch::nn::functional::cross_entropy(logits_f, y, ce);
  if (options.distill) {
    // With mixup the teacher sees the same mixed images as the student.
    const Distillation& d = *options.distill;
    loss = loss * (1.0 - d.weight) + soft_target_kl(logits_f, teacher_logits(d, inputs, options.precision), d.temperature) * d.weight;
  }
  torch::NoGradGuard no_grad_outer;  // the bookkeeping below builds no graph
  const torch::Tensor finite = loss.isfinite();
  const torch::Tensor loss_bad = finite.logical_not();
  torch::Tensor skip = loss_bad;  // this update is skipped for a bad loss or a bad label
  if (bad_label.defined()) {
    m.first_bad_label.copy_(at::where(m.first_bad_label.lt(0).logical_and(bad_label), index, m.first_bad_label));
    skip = skip.logical_or(bad_label);
  }
  m.first_bad.copy_(at::where(m.first_bad.lt(0).logical_and(loss_bad), index, m.first_bad));
  m.bad_loss.copy_(at::where(m.first_bad.eq(index), loss.to(torch::kDouble), m.bad_loss));
  m.bad.copy_(at::maximum(m.bad, skip.to(torch::kFloat)));
  {
    torch::AutoGradMode grad(true);
    if (options.precision == Precision::Float16) {
      if (!options.scaler) fail(ErrorKind::InvalidArgument, "float16 needs a loss scaler");
      options.scaler->ensure(device);
      (loss * options.scaler->scale).backward();
    } else {
      loss.backward();
    }
  }
  if (options.precision == Precision::Float16) {
    LossScaler& sc = *options.scaler;
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters(true)) {
      if (p.grad().defined()) grads.push_back(p.grad());
    }
    torch::Tensor found_inf = torch::zeros({}, sc.scale.options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, sc.scale.reciprocal());
    m.skipped.add_(found_inf.to(torch::kLong));
    optimizer.step(at::maximum(found_inf, m.bad));
    at::_amp_update_scale_(sc.scale, sc.growth_tracker, found_inf, sc.growth_factor, sc.backoff_factor, sc.growth_interval);
  } else {
    optimizer.step(m.bad);
  }
  if (options.clip_latent_weights) {
    for (auto& module : model->modules(false)) {
      if (auto* conv = module->as<nn::BinaryConv2dImpl>()) conv->weight.clamp_(-1.0, 1.0);
    }
  }
  const int64_t n = images.size(0);
  m.loss_sum.add_(at::where(finite, loss.to(torch::kDouble), 0.0) * static_cast<double>(n));
  m.correct.add_(logits.argmax(1).eq(mixup.active() && mixup.lambda < 0.5 ? y_b : y).sum());
  m.step_index.add_(1);
}

StepResult device_step_result(const torch::Tensor& images, const TrainStepOptions& options) {
  const int64_t n = images.size(0);
  options.metrics->count += n;
  options.metrics->steps += 1;
  StepResult r;
  r.loss = std::numeric_limits<double>::quiet_NaN();
  r.correct = -1;
  r.count = n;
  r.stop = options.stop_requested;
  return r;
}

StepResult train_step_on_device(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                                const TrainStepOptions& options) {
  if (options.hooks) fail(ErrorKind::InvalidArgument, "device-side step metrics are not available with data parallelism");
  options.metrics->ensure(model->conv1->weight.device());
  device_step_body(model, optimizer, images, labels, options);
  return device_step_result(images, options);
}

std::atomic<uint64_t> g_graph_captures{0}, g_graph_replays{0}, g_graph_warmups{0};

}  // namespace

class StepGraph {
 public:
  std::mutex mu;
#ifdef BNN_WITH_CUDA
  struct Entry {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    torch::Tensor images, labels;  // the graph's inputs: each batch is copied in before a replay
    // Everything the graph writes through baked-in addresses (weights, buffers, optimizer state,
    // metrics, loss scale): held, so that memory cannot be freed and handed to something else
    // whose address would then match the key.
    std::vector<torch::Tensor> held;
    std::shared_ptr<StepMetrics> metrics;
    int warmups_left = kStepGraphWarmupSteps;
    uint64_t used = 0;
  };
  std::map<std::string, Entry> entries;
  // One memory pool for all of them, held by this object (so evicting every graph cannot drop it
  // while gradients still sit in it): everything a replay allocates there lives and dies within
  // that replay (the batch, the weights, the optimizer state and the metrics are outside it), so
  // graphs that never run at once can share it, in any order. One capture stream for all of them.
  std::optional<c10::MempoolId_t> pool;
  c10::DeviceIndex pool_device = -1;
  std::optional<c10::cuda::CUDAStream> stream;
  std::string broken;  // why a capture failed; no more are tried
  uint64_t clock = 0;
  static constexpr size_t kMaxEntries = 4;

  void release() {
    entries.clear();  // the graphs first: each holds the pool too
    if (pool) {
      try {
        c10::cuda::CUDACachingAllocator::releasePool(pool_device, *pool);
      } catch (...) {
      }
      pool.reset();
    }
  }
  ~StepGraph() { release(); }
#endif
};

std::shared_ptr<StepGraph> make_step_graph() { return std::make_shared<StepGraph>(); }

void clear_step_graph(StepGraph& graph) {
  std::lock_guard<std::mutex> lock(graph.mu);
#ifdef BNN_WITH_CUDA
  graph.release();
#endif
}

StepGraphCounts step_graph_counts() { return {g_graph_captures.load(), g_graph_replays.load(), g_graph_warmups.load()}; }

namespace {

void check_graph_step(const nn::ResNet18& model, const torch::Tensor& labels, const TrainStepOptions& options) {
  const c10::Device device = model->conv1->weight.device();
  if (!device.is_cuda()) fail(ErrorKind::InvalidArgument, "cudaGraph needs a CUDA device; this model is on " + device.str());
  if (!options.metrics) fail(ErrorKind::InvalidArgument, "cudaGraph needs device-side step metrics (a graph cannot hand a loss back each step)");
  if (options.hooks) fail(ErrorKind::InvalidArgument, "cudaGraph is not available with data parallelism");
  if (options.mixup.active()) fail(ErrorKind::InvalidArgument, "cudaGraph is not available with mixup (each step's mixing is a new host input)");
  if (options.distill) fail(ErrorKind::InvalidArgument, "cudaGraph is not available with distillation");
  if (options.precision == Precision::Float16 && !options.scaler) fail(ErrorKind::InvalidArgument, "float16 needs a loss scaler");
  if (labels.device() != device) {
    fail(ErrorKind::InvalidArgument, "cudaGraph needs the labels on the model's device (" + device.str() + "), got " + labels.device().str());
  }
}

#ifdef BNN_WITH_CUDA

// The tensors a captured step writes through baked-in addresses.
std::vector<torch::Tensor> written_tensors(nn::ResNet18& model, Optimizer& optimizer, const TrainStepOptions& options) {
  std::vector<torch::Tensor> out = model->parameters(true);
  for (const auto& b : model->buffers(true)) out.push_back(b);
  for (const auto& t : optimizer.fused_state_tensors()) out.push_back(t);
  const StepMetrics& m = *options.metrics;
  for (const torch::Tensor* t : {&m.loss_sum, &m.correct, &m.bad, &m.first_bad, &m.bad_loss, &m.first_bad_label, &m.skipped, &m.step_index}) {
    out.push_back(*t);
  }
  if (options.precision == Precision::Float16) {
    out.push_back(options.scaler->scale);
    out.push_back(options.scaler->growth_tracker);
  }
  return out;
}

// Everything the captured launches depend on besides the values in the tensors they were given.
std::string graph_key(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                      const TrainStepOptions& options, const std::vector<torch::Tensor>& written) {
  std::ostringstream k;
  k.precision(17);  // the learning rate is baked in to the last bit
  const auto tensor = [&](const torch::Tensor& t) {
    k << '[' << t.sizes() << t.strides() << t.scalar_type() << ']';
  };
  tensor(images);
  tensor(labels);
  const FusionFlags fusion = fusion_flags();
  const auto& c = model->config;
  auto& ctx = at::globalContext();
  k << static_cast<int>(options.precision) << ' ' << optimizer.lr() << ' ' << options.label_smoothing << ' ' << options.clip_latent_weights << ' '
    << c.binary_weights << c.binary_activations << ' ' << fusion.cuda << ' ';
  // The libraries' modes are read as each call is recorded (cuDNN's algorithm, cuBLAS's math mode).
  k << ctx.userEnabledCuDNN() << ctx.benchmarkCuDNN() << ctx.deterministicCuDNN() << ctx.allowTF32CuDNN() << ctx.allowTF32CuBLAS()
    << static_cast<int>(ctx.allowFP16ReductionCuBLAS()) << static_cast<int>(ctx.allowBF16ReductionCuBLAS()) << ' ';
  // Every module's mode (BatchNorm's batch or running statistics) and what is trained.
  for (const auto& module : model->modules(true)) k << module->is_training();
  k << ' ';
  for (const auto& p : model->parameters(true)) k << p.requires_grad();
  // Where it writes (held by the graph, so no other tensor can come to live there while it does).
  k << ' ' << &optimizer << ' ' << options.metrics.get();
  for (const auto& t : written) k << ' ' << t.data_ptr();
  return k.str();
}

StepResult graph_step(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                      const TrainStepOptions& options) {
  StepGraph& g = *options.graph;
  std::lock_guard<std::mutex> lock(g.mu);
  const c10::Device device = model->conv1->weight.device();
  options.metrics->ensure(device);
  if (options.precision == Precision::Float16) options.scaler->ensure(device);
  if (!g.broken.empty()) fail(ErrorKind::InvalidArgument, g.broken);
  const std::vector<torch::Tensor> written = written_tensors(model, optimizer, options);
  const std::string key = graph_key(model, optimizer, images, labels, options, written);
  auto it = g.entries.find(key);
  if (it == g.entries.end()) {
    if (g.entries.size() >= StepGraph::kMaxEntries) {
      auto oldest = g.entries.begin();
      for (auto e = g.entries.begin(); e != g.entries.end(); ++e) {
        if (e->second.used < oldest->second.used) oldest = e;
      }
      g.entries.erase(oldest);
    }
    it = g.entries.emplace(key, StepGraph::Entry{}).first;
  }
  StepGraph::Entry& e = it->second;
  e.used = ++g.clock;
  if (e.warmups_left > 0) {
    // Ordinary steps (they train like any other): cuDNN picks its algorithms, the optimizer and
    // the loss scaler make their state, so the capture records none of that.
    --e.warmups_left;
    g_graph_warmups.fetch_add(1, std::memory_order_relaxed);
    device_step_body(model, optimizer, images, labels, options);
    return device_step_result(images, options);
  }
  const c10::cuda::CUDAGuard device_guard(device);
  if (!e.graph) {
    e.images = torch::empty_like(images, at::MemoryFormat::Preserve).copy_(images);
    e.labels = torch::empty_like(labels).copy_(labels);
    e.held = written;
    e.metrics = options.metrics;
    if (!g.pool) {
      g.pool = at::cuda::graph_pool_handle();
      g.pool_device = device.index();
      c10::cuda::CUDACachingAllocator::createOrIncrefPool(g.pool_device, *g.pool);
    }
    if (!g.stream) g.stream = c10::cuda::getStreamFromPool(false, device.index());
    // Captured on the graph's own side stream (capture cannot use the legacy default stream) that
    // first waits for the work already queued, in thread-local mode so that other threads (the
    // loader's copies, a metrics read) are not refused CUDA calls while it lasts.
    const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
    const c10::cuda::CUDAStream side = *g.stream;
    c10::Event queued(c10::DeviceType::CUDA);
    queued.record(caller);
    queued.block(side);
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    {
      const c10::cuda::CUDAStreamGuard stream_guard(side);
      const bool cache = at::autocast::is_autocast_cache_enabled();
      at::autocast::set_autocast_cache_enabled(false);  // a cached cast would outlive the capture
      bool begun = false;
      try {
        graph->capture_begin(*g.pool, cudaStreamCaptureModeThreadLocal);
        begun = true;
        try {
          device_step_body(model, optimizer, e.images, e.labels, options);
        } catch (...) {
          try {
            graph->capture_end();
          } catch (...) {
          }
          throw;
        }
        graph->capture_end();
        // The warm-ups made every piece of optimizer state; one made during the capture would
        // live in the graph's pool, which other graphs' replays reuse, and its initialisation was
        // recorded, never run: forget it (and the gradients the capture left) before failing.
        const std::vector<torch::Tensor> after = written_tensors(model, optimizer, options);
        bool same = after.size() == written.size();
        for (size_t i = 0; same && i < after.size(); ++i) same = after[i].data_ptr() == written[i].data_ptr();
        if (!same) {
          optimizer.forget_fused_state_except(written);
          optimizer.zero_grad();
          throw std::runtime_error("the optimizer made new state during the capture (a parameter without a gradient in the warm-up steps)");
        }
      } catch (const std::exception& error) {
        at::autocast::set_autocast_cache_enabled(cache);
        if (begun) {
          // An invalidated capture makes capture_end throw before it tells the allocators the
          // capture is over; tell them here (each may already know), so they do not keep routing
          // to the pool or deferring frees for good.
          try {
            c10::cuda::CUDACachingAllocator::endAllocateToPool(g.pool_device, *g.pool);
          } catch (...) {
          }
          try {
            at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(*g.pool);
          } catch (...) {
          }
        }
        g.entries.erase(it);
        // Something in the step cannot be captured (a host synchronisation, say): a bug to report.
        g.broken = std::string("cudaGraph: capturing the training step failed (train without cudaGraph, in a new process): ") + error.what();
        fail(ErrorKind::InvalidArgument, g.broken);
      } catch (...) {
        at::autocast::set_autocast_cache_enabled(cache);
        g.entries.erase(it);
        throw;
      }
      at::autocast::set_autocast_cache_enabled(cache);
    }
    c10::Event captured(c10::DeviceType::CUDA);
    captured.record(side);
    captured.block(caller);
    e.graph = std::move(graph);
    g_graph_captures.fetch_add(1, std::memory_order_relaxed);
  } else {
    e.images.copy_(images, /*non_blocking=*/true);
    e.labels.copy_(labels, /*non_blocking=*/true);
  }
  // The capture recorded the step without running it: this replay is the step.
  e.graph->replay();
  g_graph_replays.fetch_add(1, std::memory_order_relaxed);
  // The gradients sit in the graph's buffers, which another graph of this pool may overwrite
  // between its replays: none, as after zero_grad, rather than stale ones (host-side only).
  optimizer.zero_grad();
  return device_step_result(images, options);
}

#endif  // BNN_WITH_CUDA

}  // namespace

bool cuda_bf16_supported(const c10::Device& device) {
  if (!device.is_cuda()) return false;
  // Asked on every bfloat16 step (check_precision): the answer per device is fixed, so ask once.
  static std::array<std::atomic<int8_t>, 64> known{};  // 0 unknown, 1 no, 2 yes
  const auto index = static_cast<size_t>(device.has_index() ? device.index() : 0);
  if (index < known.size() && known[index].load() != 0) return known[index].load() == 2;
  const c10::DeviceGuard guard(device);
  const bool yes = at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8();
  if (index < known.size()) known[index].store(yes ? 2 : 1);
  return yes;
}

void StepMetrics::ensure(const c10::Device& device) {
  if (loss_sum.defined() && loss_sum.device() == device) return;
  const auto on = torch::TensorOptions().device(device);
  loss_sum = torch::zeros({}, on.dtype(torch::kDouble));
  correct = torch::zeros({}, on.dtype(torch::kLong));
  bad = torch::zeros({}, on.dtype(torch::kFloat));
  first_bad = torch::full({}, -1, on.dtype(torch::kLong));
  bad_loss = torch::zeros({}, on.dtype(torch::kDouble));
  first_bad_label = torch::full({}, -1, on.dtype(torch::kLong));
  skipped = torch::zeros({}, on.dtype(torch::kLong));
  step_index = torch::zeros({}, on.dtype(torch::kLong));
  count = 0;
  steps = 0;
}

void StepMetrics::reset() {
  // In place: a captured step graph (StepGraph) holds these very tensors.
  if (loss_sum.defined()) {
    torch::NoGradGuard no_grad;
    for (torch::Tensor* t : {&loss_sum, &correct, &bad, &bad_loss, &skipped, &step_index}) t->zero_();
    first_bad.fill_(-1);
    first_bad_label.fill_(-1);
  }
  count = 0;
  steps = 0;
}

StepMetrics::Totals StepMetrics::read() const {
  Totals t;
  t.count = count;
  t.steps = steps;
  if (!loss_sum.defined()) return t;
  // One copy back for all of them.
  const torch::Tensor host = torch::stack({loss_sum, correct.to(torch::kDouble), first_bad.to(torch::kDouble), bad_loss,
                                           first_bad_label.to(torch::kDouble), skipped.to(torch::kDouble)})
                                 .cpu();
  const double* v = host.const_data_ptr<double>();
  t.loss_sum = v[0];
  t.correct = static_cast<int64_t>(v[1]);
  t.first_bad = static_cast<int64_t>(v[2]);
  t.bad_loss = v[3];
  t.first_bad_label = static_cast<int64_t>(v[4]);
  t.skipped = static_cast<int64_t>(v[5]);
  return t;
}

void LossScaler::ensure(const c10::Device& device) {
  if (scale.defined() && scale.device() == device) return;
  const auto on = torch::TensorOptions().device(device);
  if (restored_scale) {  // from a checkpoint
    scale = torch::full({}, *restored_scale, on.dtype(torch::kFloat));
    growth_tracker = torch::full({}, *restored_tracker, on.dtype(torch::kInt));
    restored_scale.reset();
    restored_tracker.reset();
    return;
  }
  if (scale.defined()) {  // the model moved: the scale goes along (a copy, once)
    scale = scale.to(device);
    growth_tracker = growth_tracker.to(device);
    return;
  }
  // GradScaler's defaults: 2^16 to start, doubling every 2000 clean steps.
  scale = torch::full({}, 65536.0, torch::TensorOptions().device(device).dtype(torch::kFloat));
  growth_tracker = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kInt));
}

NamedParameters LossScaler::state() const {
  if (restored_scale) {
    return {{std::string(kPrefix) + "scale", torch::full({}, *restored_scale, torch::kFloat)},
            {std::string(kPrefix) + "_growth_tracker", torch::full({}, *restored_tracker, torch::kInt)}};
  }
  if (!scale.defined()) return {};
  return {{std::string(kPrefix) + "scale", scale.detach().to(torch::kCPU).clone()},
          {std::string(kPrefix) + "_growth_tracker", growth_tracker.detach().to(torch::kCPU).clone()}};
}

void LossScaler::load_state(const NamedParameters& state) {
  if (state.empty()) {
    scale = growth_tracker = torch::Tensor();
    restored_scale.reset();
    restored_tracker.reset();
    return;
  }
  torch::Tensor s, g;
  for (const auto& [name, t] : state) {
    if (name == std::string(kPrefix) + "scale") s = t;
    else if (name == std::string(kPrefix) + "_growth_tracker") g = t;
    else fail(ErrorKind::InvalidArgument, "unknown loss-scaler state '" + name + "' (expected " + kPrefix + "scale and " + kPrefix + "_growth_tracker)");
  }
  if (!s.defined() || !g.defined()) {
    fail(ErrorKind::InvalidArgument, std::string("loss-scaler state needs both ") + kPrefix + "scale and " + kPrefix + "_growth_tracker");
  }
  if (s.numel() != 1 || !s.is_floating_point()) fail(ErrorKind::InvalidArgument, std::string(kPrefix) + "scale must be one floating-point number");
  if (g.numel() != 1 || g.is_floating_point() || g.scalar_type() == torch::kBool) {
    fail(ErrorKind::InvalidArgument, std::string(kPrefix) + "_growth_tracker must be one integer");
  }
  const double sv = s.to(torch::kDouble).item<double>();
  const int64_t gv = g.to(torch::kLong).item<int64_t>();
  // float32 holds it: a larger scale would be infinite there and skip every update.
  if (!std::isfinite(sv) || sv <= 0 || sv > std::numeric_limits<float>::max()) {
    fail(ErrorKind::InvalidArgument, std::string(kPrefix) + "scale must be finite, positive and within float32, got " + std::to_string(sv));
  }
  if (gv < 0 || gv > std::numeric_limits<int32_t>::max()) fail(ErrorKind::InvalidArgument, std::string(kPrefix) + "_growth_tracker must be a count of steps, got " + std::to_string(gv));
  scale = growth_tracker = torch::Tensor();
  restored_scale = static_cast<double>(static_cast<float>(sv));
  restored_tracker = gv;
}

StepResult train_step(nn::ResNet18& model, Optimizer& optimizer, const torch::Tensor& images, const torch::Tensor& labels,
                      const TrainStepOptions& options) {
  check_batch(model, images, labels);
  // Developer hook (bench/profile.ts): BNN_PROFILE_TRACE=<file> writes a chrome trace of the step.
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (const char* trace = std::getenv("BNN_PROFILE_TRACE")) {
    profile = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace));
  }
  check_precision(model, options.precision);
  if (options.mixup.active()) check_mixup(options.mixup, images.size(0));
  if (options.distill) check_teacher(model, *options.distill, images);
  if (options.graph) {
    check_graph_step(model, labels, options);
#ifdef BNN_WITH_CUDA
    return graph_step(model, optimizer, images, labels, options);
#endif
  }
  if (options.metrics) return train_step_on_device(model, optimizer, images, labels, options);
  if (options.precision == Precision::Float16) {
    fail(ErrorKind::InvalidArgument, "float16 training needs device-side step metrics (its loss scaling never syncs)");
  }
  optimizer.zero_grad();
  StepHooks* hooks = options.hooks.get();
  if (hooks) hooks->before_forward();
  const Mixup& mixup = options.mixup;
  const torch::Tensor inputs = mixup.active() ? mix_images(images, mixup) : images;
  torch::Tensor logits;
  {
    AutocastScope autocast(options.precision, model->conv1->weight.device());
    logits = model->forward(inputs);
  }
  const torch::Tensor logits_f = logits.to(torch::kFloat);
  torch::Tensor loss = mixup.active() ? mixup_cross_entropy(logits_f, labels, mixup, options.label_smoothing)
                                      : cross_entropy(logits_f, labels, options.label_smoothing);
  if (options.distill) {
    // (1 - w) * CE + w * T^2 * KL, as distillation_loss; with mixup the CE is mixup's and the
    // teacher sees the same mixed images as the student.
    const Distillation& d = *options.distill;
    loss = loss * (1.0 - d.weight) + soft_target_kl(logits_f, teacher_logits(d, inputs, options.precision), d.temperature) * d.weight;
  }
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
    const torch::Tensor scored = mixup.active() ? mixup_dominant_labels(labels, mixup) : labels;
    r.correct = logits.argmax(1).eq(scored.to(logits.device())).sum().item<int64_t>();
  }
  r.count = images.size(0);
  return r;
}

EvalResult eval_step(nn::ResNet18& model, const torch::Tensor& images, const torch::Tensor& labels, Precision precision) {
  check_batch(model, images, labels);
  check_precision(model, precision);
  c10::InferenceMode inference;
  torch::Tensor logits;
  {
    AutocastScope autocast(precision, model->conv1->weight.device());
    logits = model->forward(images).to(torch::kFloat);
  }
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
