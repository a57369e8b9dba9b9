#include "nn/state.h"

#include <map>
#include <sstream>

#include <torch/torch.h>

#include "core/dtype.h"
#include "core/errors.h"

namespace bnn::nn {

NamedTensors state_dict(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value().detach());
  return out;
}

void load_state_dict(torch::nn::Module& module, const NamedTensors& state) {
  std::map<std::string, torch::Tensor> own;
  for (auto& [name, tensor] : state_dict(module)) own.emplace(name, tensor);
  std::map<std::string, const torch::Tensor*> given;
  std::vector<std::string> problems;
  for (const auto& [name, tensor] : state) {
    if (!given.emplace(name, &tensor).second) problems.push_back("duplicate key '" + name + "'");
  }
  for (const auto& [name, tensor] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      problems.push_back("missing key '" + name + "'");
      continue;
    }
    const torch::Tensor& src = *it->second;
    if (!src.defined()) {
      problems.push_back("'" + name + "' is undefined");
    } else if (src.sizes() != tensor.sizes()) {
      problems.push_back("'" + name + "' has shape " + c10::str(src.sizes()) + " but the model expects " + c10::str(tensor.sizes()));
    } else if (src.scalar_type() != tensor.scalar_type()) {
      problems.push_back("'" + name + "' has dtype " + std::string(dtype_name(src.scalar_type())) + " but the model expects " +
                         dtype_name(tensor.scalar_type()));
    }
  }
  for (const auto& [name, tensor] : given) {
    if (!own.count(name)) problems.push_back("unexpected key '" + name + "'");
  }
  if (!problems.empty()) {
    std::ostringstream msg;
    msg << "cannot load the state: " << problems.size() << " problem" << (problems.size() == 1 ? "" : "s");
    for (const auto& p : problems) msg << "\n  - " << p;
    fail(ErrorKind::InvalidArgument, msg.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : own) tensor.copy_(*given.at(name));
}

}  // namespace bnn::nn
