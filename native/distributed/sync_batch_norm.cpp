#include "distributed/sync_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/custom_class.h>

#include "core/errors.h"

namespace bnn::distributed {

namespace {

// Carries the group from forward to backward through the autograd context, which only holds IValues.
struct GroupCapsule : torch::CustomClassHolder {
  explicit GroupCapsule(std::shared_ptr<ProcessGroup> g) : group(std::move(g)) {}
  std::shared_ptr<ProcessGroup> group;
};

void all_reduce(ProcessGroup& group, at::Tensor& flat, const char* what) {
  auto work = group.all_reduce_sum_async(flat);
  group.wait(work, what);
}

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::nn::BatchNorm2dImpl* bn, const std::shared_ptr<ProcessGroup>& group) {
    const int64_t C = x.size(1);
    const int64_t local = x.numel() / C;
    // This replica's mean and biased variance from ATen's BatchNorm kernel (two-pass, so stable;
    // at::var_mean's Welford is ~7x slower on channels-last maps), then [n * mean, n * E[x^2], n]
    // summed over replicas in double.
    const auto local_stats = at::native_batch_norm(x, {}, {}, {}, {}, /*training=*/true, 0.0, /*eps=*/0.0);
    const at::Tensor mean_d = std::get<1>(local_stats).to(at::kDouble);
    const at::Tensor invstd_d = std::get<2>(local_stats).to(at::kDouble);
    // eps 0: invstd is 1/sqrt(var), infinite for a constant channel, whose variance is 0.
    const at::Tensor var_d = at::where(at::isinf(invstd_d), at::zeros_like(invstd_d), invstd_d.pow(-2));
    const auto n = static_cast<double>(local);
    at::Tensor stats = at::cat({mean_d * n, (var_d + mean_d * mean_d) * n, at::full({1}, n, mean_d.options())});
    all_reduce(*group, stats, "the SyncBatchNorm statistics all-reduce");
    const double count = stats[2 * C].item<double>();
    if (count <= 1) fail(ErrorKind::InvalidArgument, "SyncBatchNorm: expected more than 1 value per channel in the global batch, got " + std::to_string(count));
    const at::Tensor global_mean = stats.narrow(0, 0, C) / count;
    const at::Tensor global_var = (stats.narrow(0, C, C) / count - global_mean * global_mean).clamp_min(0);

    const auto& o = bn->options;
    if (bn->is_training() && o.track_running_stats() && bn->running_mean.defined()) {
      bn->num_batches_tracked += 1;
      // As torch::nn::BatchNorm2d: no momentum means a cumulative average.
      const double factor = o.momentum().has_value() ? *o.momentum() : 1.0 / bn->num_batches_tracked.item<double>();
      const at::Tensor unbiased = global_var * (count / (count - 1));
      bn->running_mean.mul_(1 - factor).add_(global_mean.to(bn->running_mean.scalar_type()), factor);
      bn->running_var.mul_(1 - factor).add_(unbiased.to(bn->running_var.scalar_type()), factor);
    }
    // In the parameters' type, as BatchNorm's kernels take running statistics (float under half
    // or bfloat16 activations).
    const auto stat_type = weight.defined() ? weight.scalar_type() : x.scalar_type();
    const at::Tensor m = global_mean.to(stat_type);
    const at::Tensor v = global_var.to(stat_type);
    const double eps = o.eps();
    ctx->save_for_backward({x, weight, m, v});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["count"] = count;
    ctx->saved_data["group"] = c10::IValue::make_capsule(c10::make_intrusive<GroupCapsule>(group));
    // With the global statistics in place of running ones, the inference kernel is the normalisation.
    return at::batch_norm(x, weight, bias, m, v, /*training=*/false, 0.0, eps, at::globalContext().userEnabledCuDNN());
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& mean = saved[2];
    const at::Tensor& var = saved[3];
    const double eps = ctx->saved_data["eps"].toDouble();
    const double count = ctx->saved_data["count"].toDouble();
    const at::Tensor dy = grads[0].contiguous(x.suggest_memory_format());
    // Eval-mode backward with the global statistics gives, in one pass, dy * w * invstd and the
    // local sums of dy * xhat (the weight's gradient) and of dy (the bias's).
    auto [grad_in, grad_weight, grad_bias] =
        at::native_batch_norm_backward(dy, x, weight, mean, var, {}, {}, /*train=*/false, eps, {true, true, true});
    at::Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      const int64_t C = x.size(1);
      at::Tensor sums = at::cat({grad_bias, grad_weight});
      auto group = c10::static_intrusive_pointer_cast<GroupCapsule>(ctx->saved_data["group"].toCapsule())->group;
      all_reduce(*group, sums, "the SyncBatchNorm gradient all-reduce");
      const at::Tensor mean_dy = sums.narrow(0, 0, C) / count;
      const at::Tensor mean_dy_xhat = sums.narrow(0, C, C) / count;
      const at::Tensor invstd = (var + eps).rsqrt();
      const at::Tensor w = weight.defined() ? weight : at::ones_like(invstd);
      // dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd,
      // written as grad_in + x * a + b per channel.
      const at::Tensor a = -w * invstd * invstd * mean_dy_xhat;
      const at::Tensor b = -w * invstd * mean_dy - a * mean;
      const std::vector<int64_t> shape{1, C, 1, 1};
      grad_x = grad_in.addcmul_(x, a.view(shape)).add_(b.view(shape));
    }
    return {grad_x, weight.defined() ? grad_weight : at::Tensor(), grad_bias, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

SyncBatchNorm::SyncBatchNorm(std::shared_ptr<ProcessGroup> group) : group_(std::move(group)) {
  if (!group_) fail(ErrorKind::InvalidArgument, "SyncBatchNorm needs a process group");
}

torch::Tensor SyncBatchNorm::forward(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  if (x.dim() != 4) fail(ErrorKind::InvalidArgument, "SyncBatchNorm: expected a 4-d input, got " + std::to_string(x.dim()) + "-d");
  return SyncBatchNormFunction::apply(x, bn.weight, bn.bias, &bn, group_);
}

}  // namespace bnn::distributed
