#include "train/optimizer.h"

#include <cmath>
#include <set>
#include <unordered_set>

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_sub.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "core/errors.h"

namespace bnn::train {

void OptimizerOptions::validate() const {
  auto check = [](bool ok, const std::string& msg) {
    if (!ok) fail(ErrorKind::InvalidArgument, msg);
  };
  check(std::isfinite(lr) && lr > 0, "lr must be a positive number, got " + std::to_string(lr));
  check(beta1 >= 0 && beta1 < 1, "betas[0] must be in [0, 1), got " + std::to_string(beta1));
  check(beta2 >= 0 && beta2 < 1, "betas[1] must be in [0, 1), got " + std::to_string(beta2));
  check(std::isfinite(eps) && eps > 0, "eps must be positive, got " + std::to_string(eps));
  check(std::isfinite(weight_decay) && weight_decay >= 0, "weightDecay must be >= 0, got " + std::to_string(weight_decay));
  if (kind == OptimizerKind::SGD) {
    check(momentum >= 0 && momentum < 1, "momentum must be in [0, 1), got " + std::to_string(momentum));
    // As torch.optim.SGD: Nesterov momentum needs a momentum (and dampening 0, which is fixed here).
    check(!nesterov || momentum > 0, "nesterov needs a momentum > 0");
    check(!decoupled, "decoupled weight decay is AdamW's; SGD's weight decay is coupled, as torch.optim.SGD");
  }
  static const std::set<std::string> kinds = {"bn", "prelu", "bias"};
  for (const auto& k : no_decay_on) check(kinds.count(k) > 0, "noDecayOn: unknown kind '" + k + "' (use bn, prelu, bias)");
}

bool matches_no_decay(const std::string& name, const std::vector<std::string>& kinds) {
  // Module names: bn, bn1, bn2, downsample.1 (BatchNorm), prelu, prelu1, prelu2.
  const auto dot = name.rfind('.');
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  const std::string module = dot == std::string::npos ? "" : name.substr(0, dot);
  const auto mdot = module.rfind('.');
  const std::string owner = mdot == std::string::npos ? module : module.substr(mdot + 1);
  for (const auto& k : kinds) {
    // RSign's learned thresholds (sign_threshold, sign_threshold1/2) and RPReLU's shifts
    // (shift_in, shift_out) are biases: ReActNet trains them, like every bias, without decay.
    if (k == "bias" && (leaf == "bias" || leaf.rfind("sign_threshold", 0) == 0 || leaf == "shift_in" || leaf == "shift_out")) return true;
    if (k == "bn" && (owner.rfind("bn", 0) == 0 || (module.size() >= 13 && module.compare(module.size() - 13, 13, ".downsample.1") == 0))) return true;
    if (k == "prelu" && owner.rfind("prelu", 0) == 0) return true;
  }
  return false;
}

Optimizer::Optimizer(const NamedParameters& params, OptimizerOptions options) : options_(std::move(options)) {
  options_.validate();
  if (params.empty()) fail(ErrorKind::InvalidArgument, "the optimizer needs at least one parameter");
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    const bool skip = matches_no_decay(name, options_.no_decay_on);
    params_.emplace_back(name, p);
    no_decay_.push_back(skip);
    (skip ? no_decay : decay).push_back(p);
  }
  auto make_group = [&](std::vector<torch::Tensor> ps, double wd) -> torch::optim::OptimizerParamGroup {
    if (is_sgd()) {
      auto o = std::make_unique<torch::optim::SGDOptions>(options_.lr);
      o->momentum(options_.momentum).dampening(0).weight_decay(wd).nesterov(options_.nesterov);
      return torch::optim::OptimizerParamGroup(std::move(ps), std::move(o));
    }
    if (options_.decoupled) {
      auto o = std::make_unique<torch::optim::AdamWOptions>(options_.lr);
      o->betas({options_.beta1, options_.beta2}).eps(options_.eps).weight_decay(wd);
      return torch::optim::OptimizerParamGroup(std::move(ps), std::move(o));
    }
    auto o = std::make_unique<torch::optim::AdamOptions>(options_.lr);
    o->betas({options_.beta1, options_.beta2}).eps(options_.eps).weight_decay(wd);
    return torch::optim::OptimizerParamGroup(std::move(ps), std::move(o));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.push_back(make_group(decay, options_.weight_decay));
  if (!no_decay.empty()) groups.push_back(make_group(no_decay, 0.0));
  if (is_sgd()) {
    impl_ = std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(options_.lr));
  } else if (options_.decoupled) {
    impl_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(options_.lr));
  } else {
    impl_ = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(options_.lr));
  }
}

void Optimizer::zero_grad() { impl_->zero_grad(/*set_to_none=*/true); }

bool Optimizer::use_fused() const {
  // params_ is never empty (the constructor refuses) and a model lives on one device.
  return params_.front().second.device().is_cuda();
}

void Optimizer::step(const torch::Tensor& found_inf) {
  // A skip flag needs the fused kernels (ATen has them for the CPU too, which is how the CPU tests
  // reach this path).
  const bool fused = use_fused() || found_inf.defined();
  if (fused != fused_live_) migrate_state(fused);
  if (fused) return is_sgd() ? fused_sgd_step(found_inf) : fused_step(found_inf);
  impl_->step();
}

void Optimizer::migrate_state(bool to_fused) {
  const NamedParameters saved = state();
  fused_live_ = to_fused;
  load_state(saved);
}

void Optimizer::fused_step(const torch::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  if (fused_.size() != params_.size()) fused_.resize(params_.size());
  for (const bool decay_group : {true, false}) {
    std::vector<torch::Tensor> ps, gs, ms, vs, steps;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (no_decay_[i] == decay_group) continue;
      const torch::Tensor& p = params_[i].second;
      if (!p.grad().defined()) continue;  // as torch.optim: a parameter without a gradient is left alone
      FusedState& st = fused_[i];
      if (!st.step.defined()) {
        st.exp_avg = torch::zeros_like(p, at::MemoryFormat::Preserve);
        st.exp_avg_sq = torch::zeros_like(p, at::MemoryFormat::Preserve);
        st.step = torch::zeros({}, p.options().dtype(torch::kFloat));
      }
      ps.push_back(p);
      gs.push_back(p.grad());
      ms.push_back(st.exp_avg);
      vs.push_back(st.exp_avg_sq);
      steps.push_back(st.step);
    }
    if (ps.empty()) continue;
    const double wd = decay_group ? options_.weight_decay : 0.0;
    const double lr = options_.lr;
    // PyTorch's fused path counts the step before the kernel and takes it back where found_inf
    // says the update was skipped, so bias correction stays right across skipped steps.
    at::_foreach_add_(steps, 1);
    std::optional<torch::Tensor> inf;
    if (found_inf.defined()) inf = found_inf;
    if (options_.decoupled) {
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, options_.beta1, options_.beta2, wd, options_.eps, false, false, std::nullopt, inf);
    } else {
      at::_fused_adam_(ps, gs, ms, vs, {}, steps, lr, options_.beta1, options_.beta2, wd, options_.eps, false, false, std::nullopt, inf);
    }
    if (inf) at::_foreach_sub_(steps, std::vector<torch::Tensor>(steps.size(), *inf));
  }
}

void Optimizer::fused_sgd_step(const torch::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  if (fused_.size() != params_.size()) fused_.resize(params_.size());
  const bool momentum = options_.momentum != 0;
  for (const bool decay_group : {true, false}) {
    std::vector<torch::Tensor> ps, gs, bufs;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (no_decay_[i] == decay_group) continue;
      const torch::Tensor& p = params_[i].second;
      if (!p.grad().defined()) continue;
      ps.push_back(p);
      gs.push_back(p.grad());
      if (!momentum) continue;
      FusedState& st = fused_[i];
      // torch.optim.SGD starts the buffer at the first gradient; a zero buffer with dampening 0
      // gives that same buffer (0 * momentum + grad), and stays right when the first step is
      // skipped (found_inf), which PyTorch's is_first_step=true with an uninitialised buffer does not.
      if (!st.momentum_buffer.defined()) st.momentum_buffer = torch::zeros_like(p, at::MemoryFormat::Preserve);
      bufs.push_back(st.momentum_buffer);
    }
    if (ps.empty()) continue;
    const double wd = decay_group ? options_.weight_decay : 0.0;
    std::optional<torch::Tensor> inf;
    if (found_inf.defined()) inf = found_inf;
    at::_fused_sgd_(ps, gs, bufs, wd, options_.momentum, options_.lr, /*dampening=*/0.0, options_.nesterov, /*maximize=*/false,
                    /*is_first_step=*/false, std::nullopt, inf);
  }
}

double Optimizer::lr() const { return impl_->param_groups().front().options().get_lr(); }

void Optimizer::set_lr(double lr) {
  if (!(std::isfinite(lr) && lr > 0)) fail(ErrorKind::InvalidArgument, "lr must be a positive number, got " + std::to_string(lr));
  for (auto& group : impl_->param_groups()) group.options().set_lr(lr);
  options_.lr = lr;
}

bool Optimizer::covers(const std::vector<torch::Tensor>& params) const {
  std::set<const void*> own;
  for (const auto& [name, p] : params_) own.insert(p.unsafeGetTensorImpl());
  for (const auto& p : params) {
    if (!own.count(p.unsafeGetTensorImpl())) return false;
  }
  return true;
}

std::vector<torch::Tensor> Optimizer::fused_state_tensors() const {
  std::vector<torch::Tensor> out;
  if (!fused_live_) return out;
  for (const FusedState& st : fused_) {
    for (const torch::Tensor* t : {&st.exp_avg, &st.exp_avg_sq, &st.step, &st.momentum_buffer}) {
      if (t->defined()) out.push_back(*t);
    }
  }
  return out;
}

void Optimizer::forget_fused_state_except(const std::vector<torch::Tensor>& kept) {
  std::unordered_set<const void*> addresses;
  for (const torch::Tensor& t : kept) addresses.insert(t.data_ptr());
  for (FusedState& st : fused_) {
    for (const torch::Tensor* t : {&st.exp_avg, &st.exp_avg_sq, &st.step, &st.momentum_buffer}) {
      if (t->defined() && addresses.count(t->data_ptr()) == 0) {
        st = FusedState{};
        break;
      }
    }
  }
}

std::vector<std::string> Optimizer::no_decay_names() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < params_.size(); ++i) if (no_decay_[i]) out.push_back(params_[i].first);
  return out;
}

namespace {

template <typename State>
void export_state(const State& s, const std::string& name, NamedParameters& out) {
  out.emplace_back(name + ".step", torch::tensor(static_cast<int64_t>(s.step()), torch::kLong));
  out.emplace_back(name + ".exp_avg", s.exp_avg().detach().clone());
  out.emplace_back(name + ".exp_avg_sq", s.exp_avg_sq().detach().clone());
}

template <typename State>
std::unique_ptr<State> import_state(const std::map<std::string, torch::Tensor>& in, const std::string& name,
                                    const torch::Tensor& param) {
  auto s = std::make_unique<State>();
  const auto& step = in.at(name + ".step");
  const auto& exp_avg = in.at(name + ".exp_avg");
  const auto& exp_avg_sq = in.at(name + ".exp_avg_sq");
  if (exp_avg.sizes() != param.sizes() || exp_avg_sq.sizes() != param.sizes()) {
    fail(ErrorKind::InvalidArgument, "optimizer state for '" + name + "' has the wrong shape");
  }
  s->step(step.item<int64_t>());
  s->exp_avg(exp_avg.to(param.options()).clone());
  s->exp_avg_sq(exp_avg_sq.to(param.options()).clone());
  return s;
}

}  // namespace

NamedParameters Optimizer::state() const {
  NamedParameters out;
  if (is_sgd()) {
    auto& states = impl_->state();
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& [name, p] = params_[i];
      torch::Tensor buf;
      if (fused_live_) {
        if (i < fused_.size()) buf = fused_[i].momentum_buffer;
      } else if (auto it = states.find(p.unsafeGetTensorImpl()); it != states.end()) {
        buf = static_cast<const torch::optim::SGDParamState&>(*it->second).momentum_buffer();
      }
      if (buf.defined()) out.emplace_back(name + ".momentum_buffer", buf.detach().clone());
    }
    return out;
  }
  if (fused_live_) {
    for (size_t i = 0; i < params_.size() && i < fused_.size(); ++i) {
      const FusedState& st = fused_[i];
      if (!st.step.defined()) continue;
      const std::string& name = params_[i].first;
      out.emplace_back(name + ".step", torch::tensor(static_cast<int64_t>(std::llround(st.step.item<double>())), torch::kLong));
      out.emplace_back(name + ".exp_avg", st.exp_avg.detach().clone());
      out.emplace_back(name + ".exp_avg_sq", st.exp_avg_sq.detach().clone());
    }
    return out;
  }
  auto& states = impl_->state();
  for (const auto& [name, p] : params_) {
    auto it = states.find(p.unsafeGetTensorImpl());
    if (it == states.end()) continue;  // never stepped
    if (options_.decoupled) export_state(static_cast<const torch::optim::AdamWParamState&>(*it->second), name, out);
    else export_state(static_cast<const torch::optim::AdamParamState&>(*it->second), name, out);
  }
  return out;
}

void Optimizer::load_state(const NamedParameters& state) {
  std::map<std::string, torch::Tensor> in;
  for (const auto& [key, t] : state) {
    if (!in.emplace(key, t).second) fail(ErrorKind::InvalidArgument, "optimizer state has '" + key + "' twice");
  }
  const auto has_suffix = [&](const std::string& suffix) {
    for (const auto& [key, t] : in) {
      if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
    }
    return false;
  };
  if (is_sgd() && has_suffix(".exp_avg")) {
    fail(ErrorKind::InvalidArgument, "this optimizer state is Adam's (exp_avg, exp_avg_sq) and the optimizer is SGD: a run resumes with the optimizer it started with");
  }
  if (!is_sgd() && has_suffix(".momentum_buffer")) {
    fail(ErrorKind::InvalidArgument, "this optimizer state is SGD's (momentum_buffer) and the optimizer is Adam: a run resumes with the optimizer it started with");
  }
  if (is_sgd() && options_.momentum == 0 && !in.empty()) {
    fail(ErrorKind::InvalidArgument, "SGD without momentum keeps no state, and this state has momentum buffers");
  }
  // Checked whole before anything changes, so a refused state leaves the optimizer as it was. As
  // torch.optim's state_dict, a parameter that never had a gradient has no entries and stays
  // fresh; one with only some of its entries, or an entry for no parameter here, is refused.
  const std::vector<const char*> parts = is_sgd() ? std::vector<const char*>{".momentum_buffer"} : std::vector<const char*>{".step", ".exp_avg", ".exp_avg_sq"};
  std::vector<bool> has(params_.size(), false);
  size_t used = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    size_t found = 0;
    for (const char* part : parts) found += in.count(name + part);
    if (found == 0) continue;
    for (const char* part : parts) {
      if (!in.count(name + part)) fail(ErrorKind::InvalidArgument, "optimizer state is missing '" + name + part + "' (it has the rest of '" + name + "')");
    }
    for (const char* part : parts) {
      if (std::string(part) == ".step") {
        // A count of updates: Adam's bias correction divides by 1 - beta^step, so a step that is
        // negative, fractional or not finite would turn the next update into NaN.
        const torch::Tensor& step = in.at(name + part);
        if (step.numel() != 1) fail(ErrorKind::InvalidArgument, "optimizer state '" + name + ".step' must be one number");
        const double v = step.to(torch::kDouble).item<double>();
        if (!(v >= 0 && v <= 9007199254740992.0 && v == std::floor(v))) {
          fail(ErrorKind::InvalidArgument, "optimizer state '" + name + ".step' must be a whole number of steps >= 0, got " + std::to_string(v));
        }
      } else if (in.at(name + part).sizes() != p.sizes()) {
        fail(ErrorKind::InvalidArgument, "optimizer state for '" + name + "' has the wrong shape");
      }
    }
    has[i] = true;
    used += found;
  }
  if (used != in.size()) {
    for (const auto& [key, t] : in) {
      bool known = false;
      for (size_t i = 0; i < params_.size() && !known; ++i) {
        for (const char* part : parts) known = known || key == params_[i].first + part;
      }
      if (!known) fail(ErrorKind::InvalidArgument, "optimizer state has '" + key + "', which belongs to no parameter of this optimizer (a state from another model?)");
    }
  }
  auto& states = impl_->state();
  states.clear();
  fused_.assign(params_.size(), FusedState{});
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!has[i]) continue;
    const auto& [name, p] = params_[i];
    void* key = p.unsafeGetTensorImpl();
    if (is_sgd()) {
      torch::Tensor buf = torch::empty_like(p, at::MemoryFormat::Preserve).copy_(in.at(name + ".momentum_buffer"));
      if (fused_live_) {
        fused_[i].momentum_buffer = buf;
      } else {
        auto s = std::make_unique<torch::optim::SGDParamState>();
        s->momentum_buffer(buf);
        states[key] = std::move(s);
      }
    } else if (fused_live_) {
      // Converted like the CPU path's state (import_state), into the fused layout: the same
      // strides as the parameter (a channels-last model), which the multi-tensor kernel wants.
      auto s = import_state<torch::optim::AdamParamState>(in, name, p);
      fused_[i] = FusedState{torch::empty_like(p, at::MemoryFormat::Preserve).copy_(s->exp_avg()),
                             torch::empty_like(p, at::MemoryFormat::Preserve).copy_(s->exp_avg_sq()), torch::full({}, static_cast<double>(s->step()), p.options().dtype(torch::kFloat))};
    } else if (options_.decoupled) {
      states[key] = import_state<torch::optim::AdamWParamState>(in, name, p);
    } else {
      states[key] = import_state<torch::optim::AdamParamState>(in, name, p);
    }
  }
}

}  // namespace bnn::train
