#pragma once
// Storage: bytes on one device, shared by every view of them. It also holds
// the version counter that in-place ops bump, so autograd can tell when a
// tensor it saved for backward was overwritten through any of its views.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace heed {

class Storage {
 public:
  // Allocates through the device's backend; throws heed::Error when that
  // device has no backend or the allocation fails.
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  uint64_t version_ = 0;
};

}  // namespace heed
