// The only file that includes ProcessGroupNCCL.hpp (it needs nccl.h, from the nvidia-nccl wheel or
// a system NCCL); built only when the found LibTorch has CUDA.
#include "core/errors.h"
#include "distributed/process_group.h"

#ifdef BNN_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace bnn::distributed {

#ifdef BNN_WITH_NCCL

bool nccl_available() { return true; }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, const RendezvousOptions& options) {
  auto nccl = c10d::ProcessGroupNCCL::Options::create();
  nccl->timeout = options.timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, options.rank, options.world_size, nccl);
}

#else

bool nccl_available() { return false; }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>&, const RendezvousOptions&) {
  fail(ErrorKind::Distributed,
       "this build of bnn-torch has no NCCL backend: it needs a LibTorch with CUDA and NCCL's nccl.h when it is "
       "compiled; use backend 'gloo'");
}

#endif

}  // namespace bnn::distributed
