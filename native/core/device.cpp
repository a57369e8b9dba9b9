#include "core/device.h"

#include <regex>

#include <torch/cuda.h>

#include "core/errors.h"

namespace bnn {

bool cuda_available() { return torch::cuda::is_available(); }

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

c10::Device resolve_device(const std::string& spec) {
  static const std::regex pattern("^(cpu|cuda)(?::([0-9]+))?$");
  std::smatch m;
  if (!std::regex_match(spec, m, pattern) || (m[1] == "cpu" && m[2].matched)) {
    fail(ErrorKind::InvalidArgument, "unknown device '" + spec + "': expected 'cpu', 'cuda' or 'cuda:N'");
  }
  if (m[1] == "cpu") return c10::Device(c10::kCPU);
  if (!cuda_available()) {
    fail(ErrorKind::CudaUnavailable,
         "device '" + spec + "' was requested but CUDA is not available (" +
             (torch::cuda::device_count() == 0 ? std::string("this LibTorch build or machine has no CUDA device")
                                               : std::string("CUDA is not usable")) +
             "); bnn-torch never falls back to the CPU silently");
  }
  // Long digit strings are clamped before stoi, which would throw out_of_range on them.
  const int index = !m[2].matched ? 0 : m[2].str().size() > 6 ? 1 << 20 : std::stoi(m[2].str());
  const int count = cuda_device_count();
  if (index >= count) {
    fail(ErrorKind::CudaUnavailable,
         "device '" + spec + "' does not exist: " + std::to_string(count) + " CUDA device(s) are visible");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace bnn
