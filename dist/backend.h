#pragma once
// The hook between dist.cpp (the API, the same in every build) and the
// transport: defined by dist/mpi_process_group.cpp with MPI, by
// dist/no_mpi.cpp without it. No #ifdef: CMake compiles one or the other.
#include <memory>

#include "dist/process_group.h"

namespace heed::dist::detail {

// Starts the transport and returns the group of every process.
std::unique_ptr<ProcessGroup> start_world();
// Stops the transport, after the group from start_world() was destroyed.
void stop_world();

}  // namespace heed::dist::detail
