#pragma once
// The seam between the op table (tensor/backend.cpp) and the CUDA backend.
// heed is a static library, so a static initialiser in cuda/ could be dropped
// by the linker; instead the op table calls register_backend_if_built() once,
// the first time a backend is looked up. Both functions exist in every build:
// cuda/no_cuda.cpp defines them when heed is built without CUDA.
namespace heed::cuda {

// Registers the CUDA row of the op table when heed was built with CUDA and does
// nothing otherwise. Registers at most once however often it is called. Safe
// without a GPU or a driver: the row's device_count() then returns 0. Must not
// be called while holding the op table's own lock (it calls register_backend).
void register_backend_if_built();

// True when heed was built with the CUDA backend, whether or not a GPU is present.
bool built_with_cuda();

}  // namespace heed::cuda
