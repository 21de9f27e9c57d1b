#pragma once
// CUDA devices: how many there are, and a guard that makes one current.
namespace heed::cuda {

// Number of visible GPUs; 0 (never an error) when there is no GPU or no driver.
int device_count();

// Throws heed::Error naming `op` when cuda:<index> does not exist here.
void check_device_index(int index, const char* op);

// Makes `index` the current device for its lifetime, then restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

}  // namespace heed::cuda
