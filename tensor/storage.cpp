#include "tensor/storage.h"

#include "tensor/backend.h"

namespace heed {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  const Backend& b = backend(device.type);
  data_ = b.allocate(nbytes, device.index);
}

Storage::~Storage() {
  if (data_) backend(device_.type).deallocate(data_, nbytes_, device_.index);
}

}  // namespace heed
