// Compiled instead of the rest of cuda/ when heed is built without CUDA: the
// op table gets no CUDA row (so asking for a CUDA device raises heed::Error
// saying heed was built without it), and no device memory is ever held.
#include <atomic>

#include "cuda/matmul.h"
#include "cuda/memory.h"
#include "cuda/register.h"
#include "tensor/backend.h"

namespace heed {
// The core's hook (tensor/backend.h): no backend to add.
void register_built_in_backends() {}
}  // namespace heed

namespace heed::cuda {

bool built_with_cuda() { return false; }

MemoryStats memory_stats(int) { return MemoryStats{}; }
void reset_peak_stats(int) {}
void empty_cache() {}

// The switch is kept (so a program may set it unconditionally) but no matmul reads it.
namespace {
std::atomic<bool> g_allow_tf32{false};
}
void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

}  // namespace heed::cuda
