#pragma once
// Philox4x32-10 blocks in bulk for the CPU random kernel: the words of blocks
// first, first + 1, ..., first + count - 1 of the stream seeded with `seed`,
// block b's four words at words[4 * (b - first)]. The same bits as
// tensor/philox.h's philox_block, block by block; several blocks run side by
// side in SIMD lanes (AVX-512 or AVX2, whichever the CPU has; scalar
// otherwise), which makes a dropout mask several times cheaper to draw.
#include <cstdint>

namespace heed::cpu {

void philox_blocks(uint64_t seed, uint64_t first, int64_t count, uint32_t* words);

namespace philox_simd {
// The SIMD bodies (philox_avx2.cpp, philox_avx512.cpp): write the blocks of
// whole vectors and return how many; call only on a CPU that has the
// instructions.
int64_t blocks_avx2(uint64_t seed, uint64_t first, int64_t count, uint32_t* words);
int64_t blocks_avx512(uint64_t seed, uint64_t first, int64_t count, uint32_t* words);
}  // namespace philox_simd

}  // namespace heed::cpu
