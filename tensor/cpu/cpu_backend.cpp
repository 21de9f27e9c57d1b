// The "cpu" row of the op table: memory in cpu_allocator.cpp, kernels in cpu_*.cpp.
#include "tensor/cpu/cpu_backend.h"

#include "tensor/cpu/cpu_profile.h"
#include "tensor/error.h"

namespace heed::cpu {

namespace {
void synchronize(int /*device_index*/) {}
int device_count() { return 1; }
}  // namespace

void register_cpu_backend() {
  Backend row;
  row.name = "cpu";
  row.allocate = &allocate;
  row.deallocate = &deallocate;
  row.copy = &copy;
  row.fill = &fill;
  row.unary = &unary;
  row.binary = &binary;
  row.where = &where;
  row.reduce = &reduce;
  row.matmul = &matmul;
  row.softmax = &softmax;
  row.softmax_backward = &softmax_backward;
  row.cross_entropy = &cross_entropy;
  row.cross_entropy_backward = &cross_entropy_backward;
  row.attention_forward = &attention_forward;
  row.attention_backward = &attention_backward;
  row.layer_norm = &layer_norm;
  row.layer_norm_backward = &layer_norm_backward;
  row.index_select = &index_select;
  row.gather = &gather;
  row.scatter_add = &scatter_add;
  row.index_add = &index_add;
  row.adam_step = &adam_step;
  row.lerp = &lerp;
  row.random = &random;
  row.dropout = &dropout;
  row.synchronize = &synchronize;
  row.device_count = &device_count;
  maybe_profile(row);
  register_backend(DeviceType::CPU, row);
}

}  // namespace heed::cpu
