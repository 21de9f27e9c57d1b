#pragma once
// Whether this heed has the CUDA backend. The backend registers its row in
// the op table itself, through the core's hook register_built_in_backends()
// (tensor/backend.h); this header only answers the question a program or a
// test asks before it picks a device. It exists in every build: cuda/no_cuda.cpp
// defines it when heed is built without CUDA.
namespace heed::cuda {

// True when heed was built with the CUDA backend, whether or not a GPU is present.
bool built_with_cuda();

}  // namespace heed::cuda
