#pragma once
#include <string>

#include <c10/core/Device.h>

namespace bnn {

// Parses 'cpu', 'cuda' or 'cuda:N' and checks the device exists, so a request for CUDA never falls
// back silently to the CPU.
c10::Device resolve_device(const std::string& spec);

bool cuda_available();
int cuda_device_count();

}  // namespace bnn
