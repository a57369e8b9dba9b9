#pragma once
// The recipe's optimizer: LibTorch's Adam (coupled L2 weight decay, as torch.optim.Adam) or AdamW
// (decoupled), with two parameter groups so weight decay can be left off BatchNorm, PReLU and biases.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

namespace bnn::train {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled = false;  // AdamW
  // Parameters whose name matches one of these kinds get no weight decay: "bn", "prelu", "bias".
  std::vector<std::string> no_decay_on;

  void validate() const;
};

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

class Optimizer {
 public:
  Optimizer(const NamedParameters& params, AdamOptions options);

  void zero_grad();
  // One update. On CUDA the update is ATen's fused multi-tensor Adam (one kernel launch per group,
  // as torch.optim.Adam(fused=True)); on the CPU LibTorch's Adam, whose results the golden tests
  // pin. `found_inf` (a float32 scalar on the parameters' device) skips the update on the device
  // when it is nonzero, so a non-finite loss or gradient needs no host round trip; it selects the
  // fused kernels on the CPU as well.
  void step(const torch::Tensor& found_inf = {});
  double lr() const;
  void set_lr(double lr);
  const AdamOptions& options() const { return options_; }
  // True when every tensor in `params` is one this optimizer updates.
  bool covers(const std::vector<torch::Tensor>& params) const;
  // Names of the parameters in the no-decay group (for reports and tests).
  std::vector<std::string> no_decay_names() const;

  // Per-parameter state (step, exp_avg, exp_avg_sq) by parameter name, for exact checkpoints.
  NamedParameters state() const;
  // Restores state saved by state(); every parameter's state must be present or none (fresh).
  void load_state(const NamedParameters& state);

 private:
  AdamOptions options_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<bool> no_decay_;
  std::unique_ptr<torch::optim::Optimizer> impl_;

  // The fused path's state, by parameter index (float32 step counters on the device, as PyTorch's
  // fused Adam keeps them). Which store holds the live state follows where the last step ran; a
  // model moved between devices mid-training carries its state across (migrate_state).
  struct FusedState {
    torch::Tensor exp_avg, exp_avg_sq, step;
  };
  std::vector<FusedState> fused_;
  bool fused_live_ = false;
  bool use_fused() const;
  void migrate_state(bool to_fused);
  void fused_step(const torch::Tensor& found_inf);
};

// True when `name` (a PyTorch parameter name) belongs to one of the no-decay kinds.
bool matches_no_decay(const std::string& name, const std::vector<std::string>& kinds);

}  // namespace bnn::train
