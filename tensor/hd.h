#pragma once
// HEED_HD marks small inline functions that run on both sides: in device code
// when nvcc compiles them, and on the host otherwise, so the index math of the
// CUDA kernels can be unit-tested on a machine without a GPU.
#ifdef __CUDACC__
#define HEED_HD __host__ __device__
#else
#define HEED_HD
#endif
