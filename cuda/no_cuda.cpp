// Compiled instead of the rest of cuda/ when heed is built without CUDA: the
// op table gets no CUDA row (so asking for a CUDA device raises heed::Error
// saying heed was built without it), and no device memory is ever held.
#include "cuda/memory.h"
#include "cuda/register.h"

namespace heed::cuda {

void register_backend_if_built() {}
bool built_with_cuda() { return false; }

MemoryStats memory_stats(int) { return MemoryStats{}; }
void reset_peak_stats(int) {}
void empty_cache() {}

}  // namespace heed::cuda
