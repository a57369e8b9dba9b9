#pragma once
// The recipe's optimizer: LibTorch's Adam (coupled L2 weight decay, as torch.optim.Adam) or AdamW
// (decoupled), with two parameter groups so weight decay can be left off BatchNorm, PReLU and biases;
// and SGD with momentum (as torch.optim.SGD), the tricks ablation's alternative to Adam.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

namespace bnn::train {

enum class OptimizerKind { Adam, SGD };

// Options of both kinds; the fields of the other kind are ignored.
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::Adam;
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // Coupled (added to the gradient) for Adam and SGD, as torch.optim; AdamW's when decoupled.
  double weight_decay = 0.0;
  bool decoupled = false;  // AdamW
  // SGD: torch.optim.SGD's momentum and nesterov, with dampening 0 (the only value nesterov allows).
  double momentum = 0.9;
  bool nesterov = false;
  // Parameters whose name matches one of these kinds get no weight decay: "bn", "prelu", "bias".
  std::vector<std::string> no_decay_on;

  void validate() const;
};

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

class Optimizer {
 public:
  Optimizer(const NamedParameters& params, OptimizerOptions options);

  void zero_grad();
  // One update. On CUDA the update is ATen's fused multi-tensor Adam or SGD (one kernel launch per
  // group, as torch.optim.Adam(fused=True) / SGD(fused=True)); on the CPU LibTorch's Adam or SGD,
  // whose results the golden tests pin. `found_inf` (a float32 scalar on the parameters' device)
  // skips the update on the device when it is nonzero, so a non-finite loss or gradient needs no
  // host round trip; it selects the fused kernels on the CPU as well.
  void step(const torch::Tensor& found_inf = {});
  double lr() const;
  void set_lr(double lr);
  const OptimizerOptions& options() const { return options_; }
  // True when every tensor in `params` is one this optimizer updates.
  bool covers(const std::vector<torch::Tensor>& params) const;
  // Names of the parameters in the no-decay group (for reports and tests).
  std::vector<std::string> no_decay_names() const;

  // Per-parameter state by parameter name, for exact checkpoints: Adam's step, exp_avg, exp_avg_sq;
  // SGD's momentum_buffer (none without momentum). PyTorch's state names.
  NamedParameters state() const;
  // Restores state saved by state(), checked whole before anything changes: a parameter's entries
  // are all there or none (it never had a gradient: it stays fresh, as in torch.optim); an entry
  // for no parameter here, and the state of the other kind (Adam's into SGD, or back), are refused.
  void load_state(const NamedParameters& state);

  // The fused path's live state tensors (empty before its first step): what a captured step
  // (train/step.h StepGraph) writes, so the graph holds them and keys on where they are.
  std::vector<torch::Tensor> fused_state_tensors() const;
  // Forgets each parameter's fused state that holds a tensor not among `kept` (by address): state
  // a failed graph capture made, whose initialisation was recorded but never ran. That parameter
  // starts fresh, as it would have without the capture.
  void forget_fused_state_except(const std::vector<torch::Tensor>& kept);

 private:
  OptimizerOptions options_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<bool> no_decay_;
  std::unique_ptr<torch::optim::Optimizer> impl_;

  // The fused path's state, by parameter index (float32 step counters on the device, as PyTorch's
  // fused Adam keeps them; SGD's momentum buffers). Which store holds the live state follows where the last step ran; a
  // model moved between devices mid-training carries its state across (migrate_state).
  struct FusedState {
    torch::Tensor exp_avg, exp_avg_sq, step;
    torch::Tensor momentum_buffer;
  };
  std::vector<FusedState> fused_;
  bool fused_live_ = false;
  bool use_fused() const;
  void migrate_state(bool to_fused);
  void fused_step(const torch::Tensor& found_inf);
  void fused_sgd_step(const torch::Tensor& found_inf);
  bool is_sgd() const { return options_.kind == OptimizerKind::SGD; }
};

// True when `name` (a PyTorch parameter name) belongs to one of the no-decay kinds.
bool matches_no_decay(const std::string& name, const std::vector<std::string>& kinds);

}  // namespace bnn::train
