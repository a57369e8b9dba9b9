// The only file that includes ProcessGroupGloo.hpp: it needs Gloo's own headers (libgloo-dev),
// which PyTorch's wheels do not ship. Everything else talks to c10d::Backend.
#include <cstdlib>

#include "core/errors.h"
#include "distributed/process_group.h"

#ifdef BNN_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace bnn::distributed {

#ifdef BNN_WITH_GLOO

bool gloo_available() { return true; }

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, const RendezvousOptions& options) {
  auto gloo = c10d::ProcessGroupGloo::Options::create(options.timeout);
  // As torch.distributed does: GLOO_SOCKET_IFNAME picks the interface; otherwise a loopback
  // rendezvous stays on loopback (the host name may resolve to an address peers cannot reach),
  // and anything else uses the address the host name resolves to.
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (options.master_addr == "127.0.0.1" || options.master_addr == "localhost" || options.master_addr == "::1") {
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(options.master_addr));
  } else {
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  gloo->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, options.rank, options.world_size, gloo);
}

#else

bool gloo_available() { return false; }

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>&, const RendezvousOptions&) {
  fail(ErrorKind::Distributed,
       "this build of bnn-torch has no Gloo backend: Gloo's headers were not found when it was compiled "
       "(install libgloo-dev, or set GLOO_INCLUDE_DIR, and rebuild with `npm rebuild bnn-torch`)");
}

#endif

}  // namespace bnn::distributed
