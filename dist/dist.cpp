// The API of dist/dist.h on one process-wide world group. The transport
// behind it comes from dist/backend.h (MPI, or the world of one).
#include "dist/dist.h"

#include <cstdio>
#include <exception>
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
  if (std::uncaught_exceptions() > 0 && g_world && g_world->size() > 1)
    // Its message cannot be read here: an exception is known to
    // std::current_exception() only once caught, and the catch comes after this.
    abort("an exception left the scope of dist::InitGuard; its message is lost (to have it printed here, catch it "
          "inside the scope and pass e.what() to dist::abort)");
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
int local_rank() { return world().local_rank(); }
int local_world_size() { return world().local_size(); }
void barrier() { world().barrier(); }
void broadcast(Tensor& t, int root) { world().broadcast(t, root); }
void all_reduce(Tensor& t, ReduceOp op) { world().all_reduce(t, op); }
std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) { return world().all_reduce_async(t, op); }

void abort(const std::string& message, int code) {
  if (g_world) g_world->abort(message, code);
  std::fprintf(stderr, "heed dist: %s\n", message.c_str());
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace heed::dist
