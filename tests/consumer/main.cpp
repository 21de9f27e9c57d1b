// Uses an installed heed: include the umbrella header, make a tensor, reduce it.
#include <cstdio>

#include <heed.h>

int main() {
  const double total = heed::ones({2, 3}).sum().item<float>();
  if (total != 6.0) {
    std::fprintf(stderr, "consumer: heed::ones({2, 3}).sum() gave %g, expected 6\n", total);
    return 1;
  }
  std::printf("consumer: heed::ones({2, 3}).sum() = %g\n", total);
  return 0;
}
