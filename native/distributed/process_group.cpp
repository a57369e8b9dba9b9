#include "distributed/process_group.h"

#include <map>
#include <tuple>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "core/errors.h"

namespace bnn::distributed {

namespace {

std::string where(const RendezvousOptions& o) {
  return "rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) + " (" + o.backend + ", " + o.master_addr + ":" +
         std::to_string(o.master_port) + ")";
}

std::string message_of(const std::exception& e) {
  std::string m = without_backtrace(dynamic_cast<const c10::Error*>(&e) ? dynamic_cast<const c10::Error&>(e).what_without_backtrace() : e.what());
  // Gloo prefixes its build machine's source location ("[/__w/pytorch/.../pair.cc:553] ").
  if (m.size() > 2 && m[0] == '[') {
    const auto close = m.find("] ");
    if (close != std::string::npos && m.find(".cc:") < close) m.erase(0, close + 2);
  }
  return m;
}

}  // namespace

std::shared_ptr<ProcessGroup> ProcessGroup::join(const RendezvousOptions& o) {
  if (o.world_size < 1) fail(ErrorKind::InvalidArgument, "WORLD_SIZE must be at least 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size) {
    fail(ErrorKind::InvalidArgument, "RANK must be in [0, WORLD_SIZE - 1] = [0, " + std::to_string(o.world_size - 1) + "], got " + std::to_string(o.rank));
  }
  if (o.master_port < 1 || o.master_port > 65535) fail(ErrorKind::InvalidArgument, "MASTER_PORT must be in [1, 65535], got " + std::to_string(o.master_port));
  if (o.master_addr.empty()) fail(ErrorKind::InvalidArgument, "MASTER_ADDR must not be empty");
  if (o.timeout.count() < 1) fail(ErrorKind::InvalidArgument, "the distributed timeout must be positive");
  if (o.backend != "gloo" && o.backend != "nccl") fail(ErrorKind::InvalidArgument, "backend must be 'gloo' or 'nccl', got '" + o.backend + "'");
  if (o.backend == "gloo" && !gloo_available()) make_gloo_backend({}, o);  // throws the explanation
  if (o.backend == "nccl" && !nccl_available()) make_nccl_backend({}, o);

  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.world_size);
    so.waitWorkers = true;  // rank 0 returns once every rank has connected
    so.timeout = o.timeout;
    store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    fail(ErrorKind::Distributed, where(o) + ": the rendezvous through the TCPStore failed: " + message_of(e) +
                                     " (are all " + std::to_string(o.world_size) + " processes started, with the same MASTER_ADDR and MASTER_PORT?)");
  }
  c10::intrusive_ptr<c10d::Backend> backend;
  try {
    backend = o.backend == "nccl" ? make_nccl_backend(store, o) : make_gloo_backend(store, o);
  } catch (const bnn::Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(ErrorKind::Distributed, where(o) + ": creating the " + o.backend + " process group failed: " + message_of(e));
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(o, std::move(store), std::move(backend)));
}

ProcessGroup::ProcessGroup(RendezvousOptions options, c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> backend)
    : options_(std::move(options)), store_(std::move(store)), backend_(std::move(backend)) {}

ProcessGroup::~ProcessGroup() {
  try {
    backend_.reset();
    store_.reset();
  } catch (...) {
    // A destructor must not throw; a peer that vanished can make the shutdown complain.
  }
}

void ProcessGroup::rethrow(const char* what, const std::exception& e) const {
  fail(ErrorKind::Distributed, where(options_) + ": " + what + " failed: " + message_of(e) +
                                   " (another process of the group has probably died or stopped; collectives time out after " +
                                   std::to_string(options_.timeout.count() / 1000) + " s)");
}

void ProcessGroup::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    rethrow(what, e);
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroup::all_reduce_sum_async(at::Tensor& flat) {
  try {
    std::vector<at::Tensor> one{flat};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = options_.timeout;
    return backend_->allreduce(one, opts);
  } catch (const std::exception& e) {
    rethrow("all-reduce", e);
  }
}

template <typename F>
void ProcessGroup::coalesced(const std::vector<at::Tensor>& tensors, const char* what, F&& collective) {
  // One flat message per (dtype, device): c10d treats several tensors in one call as one per
  // device, not as independent values, and many small messages cost one round trip each.
  std::map<std::tuple<int, int, int>, std::vector<at::Tensor>> groups;
  for (const auto& t : tensors) {
    if (!t.defined()) fail(ErrorKind::InvalidArgument, std::string(what) + ": a tensor is undefined");
    groups[{static_cast<int>(t.scalar_type()), static_cast<int>(t.device().type()), t.device().index()}].push_back(t);
  }
  for (auto& [key, group] : groups) {
    std::vector<at::Tensor> flat_parts;
    flat_parts.reserve(group.size());
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}));
    at::Tensor flat = at::cat(flat_parts);
    std::vector<at::Tensor> one{flat};
    try {
      collective(one)->wait();
    } catch (const bnn::Error&) {
      throw;
    } catch (const std::exception& e) {
      rethrow(what, e);
    }
    at::NoGradGuard no_grad;
    int64_t offset = 0;
    for (auto& t : group) {
      const int64_t n = t.numel();
      t.detach().copy_(flat.narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  if (root < 0 || root >= options_.world_size) fail(ErrorKind::InvalidArgument, "broadcast root must be a rank, got " + std::to_string(root));
  coalesced(tensors, "broadcast", [&](std::vector<at::Tensor>& one) {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = options_.timeout;
    return backend_->broadcast(one, opts);
  });
}

void ProcessGroup::all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  coalesced(tensors, "all-reduce", [&](std::vector<at::Tensor>& one) {
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = options_.timeout;
    return backend_->allreduce(one, opts);
  });
}

void ProcessGroup::barrier() {
  try {
    c10d::BarrierOptions opts;
    opts.timeout = options_.timeout;
    backend_->barrier(opts)->wait();
  } catch (const std::exception& e) {
    rethrow("barrier", e);
  }
}

}  // namespace bnn::distributed
