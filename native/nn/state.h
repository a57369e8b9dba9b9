#pragma once
// A module's state (parameters and buffers) by PyTorch name, and strict loading that reports every
// mismatch at once instead of stopping at the first or skipping silently.
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

namespace bnn::nn {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Parameters then buffers, as detached tensors that share storage with the module.
NamedTensors state_dict(const torch::nn::Module& module);

// Copies `state` into the module. Every name must exist with the same shape; dtypes must match
// (int64 counters included). Throws bnn::Error listing all missing, unexpected and mismatched
// entries; nothing is modified unless everything matches.
void load_state_dict(torch::nn::Module& module, const NamedTensors& state);

}  // namespace bnn::nn
