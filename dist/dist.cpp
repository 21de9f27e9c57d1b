// The API of dist/dist.h on one process-wide world group. The transport
// behind it comes from dist/backend.h (MPI, or the world of one).
#include "dist/dist.h"

#include <memory>

#include "dist/backend.h"
#include "tensor/error.h"

namespace heed::dist {

namespace {
std::unique_ptr<ProcessGroup> g_world;
bool g_finalized = false;
}  // namespace

void init() {
  if (g_world) return;
  HEED_CHECK(!g_finalized,
             "dist::init: called after dist::finalize(); MPI cannot be started twice in one process");
  g_world = detail::start_world();
}

void finalize() {
  if (!g_world) return;
  g_world.reset();
  g_finalized = true;
  detail::stop_world();
}

bool is_initialized() { return g_world != nullptr; }

InitGuard::~InitGuard() {
  try {
    finalize();
  } catch (const Error&) {
    // A destructor must not throw; the process is on its way out anyway.
  }
}

ProcessGroup& world() {
  HEED_CHECK(g_world, "dist: not initialised; call heed::dist::init() (or make a dist::InitGuard) first");
  return *g_world;
}

int rank() { return world().rank(); }
int world_size() { return world().size(); }
void barrier() { world().barrier(); }
void broadcast(Tensor& t, int root) { world().broadcast(t, root); }
void all_reduce(Tensor& t, ReduceOp op) { world().all_reduce(t, op); }

}  // namespace heed::dist
