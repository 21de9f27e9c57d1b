// Uses an installed heed: include the umbrella header, make a tensor, reduce it,
// and ask heed::dist about its world (which, in a heed built with MPI, pulls
// MPI onto the link line: heedConfig.cmake must have found it).
#include <cstdio>

#include <heed.h>

int main() {
  const double total = heed::ones({2, 3}).sum().item<float>();
  if (total != 6.0) {
    std::fprintf(stderr, "consumer: heed::ones({2, 3}).sum() gave %g, expected 6\n", total);
    return 1;
  }
  std::printf("consumer: heed::ones({2, 3}).sum() = %g\n", total);
  heed::dist::InitGuard dist;
  std::printf("consumer: heed::dist (%s MPI) has rank %d of %d\n", heed::dist::built_with_mpi() ? "with" : "without",
              heed::dist::rank(), heed::dist::world_size());
  return 0;
}
