#pragma once
// A process group of PyTorch's distributed engine (c10d), joined the way
// torch.distributed.init_process_group(init_method="env://") joins one: rank 0 hosts a TCPStore
// at MASTER_ADDR:MASTER_PORT, every rank connects to it, and the backend (Gloo for CPU tensors,
// NCCL for CUDA tensors) rendezvouses through the store.
//
// Every collective here blocks until it has finished and turns c10d's failures (a peer that died,
// a timeout, a refused connection) into bnn::Error(Distributed) naming this rank, so a run with a
// dead worker ends with an error instead of hanging.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/util/intrusive_ptr.h>

namespace c10d {
class Backend;
class Store;
class Work;
}  // namespace c10d

namespace bnn::distributed {

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  // How long the rendezvous and each collective may wait for the slowest peer.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // "gloo" or "nccl".
  std::string backend = "gloo";
};

// Which backends this build can create.
bool gloo_available();
bool nccl_available();

class ProcessGroup {
 public:
  // Blocks until all world_size ranks have joined (or the timeout passes).
  static std::shared_ptr<ProcessGroup> join(const RendezvousOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  const std::string& backend_name() const { return options_.backend; }
  std::chrono::milliseconds timeout() const { return options_.timeout; }

  // In place on every rank; each tensor is reduced on its own (they may differ in dtype and
  // device). Tensors of one dtype and device travel together in one flat message.
  void broadcast(const std::vector<at::Tensor>& tensors, int root);
  void all_reduce_sum(const std::vector<at::Tensor>& tensors);
  // Starts an in-place sum of one contiguous tensor; finish it with wait().
  c10::intrusive_ptr<c10d::Work> all_reduce_sum_async(at::Tensor& flat);
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what);
  void barrier();

 private:
  ProcessGroup(RendezvousOptions options, c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> backend);
  template <typename F>
  void coalesced(const std::vector<at::Tensor>& tensors, const char* what, F&& collective);
  [[noreturn]] void rethrow(const char* what, const std::exception& e) const;

  RendezvousOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

// Backend factories; each lives in its own file so that only it needs the backend's headers.
c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, const RendezvousOptions& options);
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, const RendezvousOptions& options);

}  // namespace bnn::distributed
