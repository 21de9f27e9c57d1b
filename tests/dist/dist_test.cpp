// heed::dist on every rank of a world: run by ctest as `dist_mpi` under
// `mpirun -np 2` and as `dist_single` by itself (a world of one). Its own
// program, not a case of heed_tests, because mpirun starts it once per rank.
// Every value it checks is exact: small integers, sums and halves of them.
// Exits 77 (ctest: skipped) when `--require-mpi` is given and heed was built
// without MPI.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "tests/dist/rank_check.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace dist = heed::dist;

using rank_check::check;
using rank_check::check_throws;
using rank_check::equal;

int main(int argc, char** argv) {
  rank_check::g_program = "dist_test";
  const bool require_mpi = rank_check::mpi_required(argc, argv);
  if (require_mpi && rank_check::no_mpi_to_test()) return rank_check::kSkip;
  check_throws([] { dist::rank(); }, "dist::init()", "rank() before init()");
  dist::InitGuard guard;
  dist::init();  // a second init() does nothing
  check(dist::is_initialized(), "is_initialized() after init()");
  const int rank = dist::rank();
  const int world = dist::world_size();
  rank_check::g_rank = rank;
  check(world >= 1 && rank >= 0 && rank < world, "rank within the world");
  // ctest's mpirun starts both ranks on this machine.
  check(dist::local_world_size() == world && dist::local_rank() == rank, "both ranks on this machine");
  check(dist::world().backend() == (dist::built_with_mpi() ? "mpi" : "single"), "backend name");
  if (require_mpi) check(world == 2, "mpirun -np 2 gives a world of 2, got " + std::to_string(world));
  dist::barrier();

  // all_reduce(Sum): rank r holds r + 1 + i at element i.
  {
    auto values = [&](int r) { return std::vector<float>{r + 1.0f, r + 2.0f, r + 3.0f, r + 4.0f, r + 5.0f, r + 6.0f}; };
    heed::Tensor t = heed::from_vector(values(rank), {2, 3});
    const uint64_t version = t.version();
    dist::all_reduce(t, dist::ReduceOp::Sum);
    std::vector<float> expected(6, 0.0f);
    for (int r = 0; r < world; ++r)
      for (int i = 0; i < 6; ++i) expected[i] += values(r)[i];
    check(equal(t, expected), "all_reduce(Sum) float32: " + t.str());
    check(t.version() > version, "all_reduce bumps the version counter");
    check(t.shape() == heed::Shape({2, 3}), "all_reduce keeps the shape");
  }
  // all_reduce(Mean), float64: the mean of r + 1 over the ranks is (world + 1) / 2.
  {
    heed::Tensor t = heed::from_vector(std::vector<double>{rank + 1.0, 10.0 * (rank + 1)}, {2});
    dist::all_reduce(t, dist::ReduceOp::Mean);
    check(equal(t, std::vector<double>{(world + 1) / 2.0, 10.0 * (world + 1) / 2.0}), "all_reduce(Mean) float64: " + t.str());
  }
  // all_reduce(Sum), int64, past float's exact range.
  {
    const int64_t big = (int64_t{1} << 40) + 1;
    heed::Tensor t = heed::from_vector(std::vector<int64_t>{big, rank}, {2});
    dist::all_reduce(t);
    check(equal(t, std::vector<int64_t>{big * world, int64_t{world} * (world - 1) / 2}), "all_reduce(Sum) int64: " + t.str());
  }
  // all_reduce_async: started in order, waited for in any order.
  {
    std::vector<heed::Tensor> ts;
    std::vector<std::shared_ptr<dist::Work>> works;
    for (int i = 0; i < 3; ++i) {
      ts.push_back(heed::from_vector(std::vector<float>{float(rank + i), 1.0f}, {2}));
      works.push_back(dist::all_reduce_async(ts.back(), i == 2 ? dist::ReduceOp::Mean : dist::ReduceOp::Sum));
    }
    for (int i = 2; i >= 0; --i) works[i]->wait();
    for (int i = 0; i < 3; ++i) check(works[i]->is_completed(), "a waited Work is completed");
    const float rank_sum = world * (world - 1) / 2.0f;
    check(equal(ts[0], std::vector<float>{rank_sum, float(world)}), "all_reduce_async 0: " + ts[0].str());
    check(equal(ts[1], std::vector<float>{rank_sum + world, float(world)}), "all_reduce_async 1: " + ts[1].str());
    check(equal(ts[2], std::vector<float>{(rank_sum + 2 * world) / world, 1.0f}), "all_reduce_async mean: " + ts[2].str());
    heed::Tensor b = heed::zeros({2}, heed::DType::Bool);
    auto refused = dist::all_reduce_async(b);
    check_throws([&] { refused->wait(); }, "dtype bool is not supported", "all_reduce_async of a bool tensor, at wait()");
  }
  // An empty tensor: nothing to move, the call is still made together.
  {
    heed::Tensor t = heed::zeros({0, 3});
    dist::all_reduce(t);
    check(t.numel() == 0, "all_reduce of an empty tensor");
  }
  // broadcast from the last rank (rank 1 under mpirun -np 2).
  {
    const int root = world - 1;
    heed::Tensor t = heed::from_vector(std::vector<float>{100.0f * rank, 1.5f, -2.0f}, {3});
    dist::broadcast(t, root);
    check(equal(t, std::vector<float>{100.0f * root, 1.5f, -2.0f}), "broadcast from root " + std::to_string(root) + ": " + t.str());
    heed::Tensor ids = heed::from_vector(std::vector<int64_t>{rank, 7}, {2});
    dist::broadcast(ids, 0);
    check(equal(ids, std::vector<int64_t>{0, 7}), "broadcast int64 from root 0: " + ids.str());
  }
  dist::barrier();

  // Errors of one rank's own arguments: the same on every rank, before any data moves.
  {
    heed::Tensor m = heed::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
    heed::Tensor mt = m.transpose(0, 1);
    check_throws([&] { dist::all_reduce(mt); }, "not contiguous", "all_reduce of a transposed tensor");
    check_throws([&] { dist::broadcast(mt, 0); }, "not contiguous", "broadcast of a transposed tensor");
    heed::Tensor b = heed::zeros({3}, heed::DType::Bool);
    check_throws([&] { dist::all_reduce(b); }, "dtype bool is not supported", "all_reduce of a bool tensor");
    heed::Tensor ids = heed::from_vector(std::vector<int64_t>{1, 2}, {2});
    check_throws([&] { dist::all_reduce(ids, dist::ReduceOp::Mean); }, "mean of int64", "Mean of int64");
    check_throws([&] { dist::broadcast(m, world); }, "is not a rank", "broadcast from a root outside the world");
  }
  // Shapes that differ between ranks: every rank throws, naming both.
  if (world > 1) {
    heed::Tensor t = heed::zeros({rank == 0 ? 4 : 5});
    check_throws([&] { dist::all_reduce(t); }, "rank 0 called all_reduce(sum) of float32 [4]; rank 1 called all_reduce(sum) of float32 [5]",
                 "all_reduce with different shapes");
    heed::Tensor d = heed::zeros({2}, rank == 0 ? heed::DType::Float32 : heed::DType::Float64);
    check_throws([&] { dist::broadcast(d, 0); }, "rank 1 called broadcast(root 0) of float64 [2]", "broadcast with different dtypes");
    // Different collectives: rank 0 waits at the barrier, rank 1 all-reduces.
    heed::Tensor x = heed::zeros({2});
    check_throws([&] { rank == 0 ? dist::barrier() : dist::all_reduce(x); }, "rank 0 called barrier()",
                 "barrier on one rank, all_reduce on the other");
    // A tensor refused on one rank only: that rank says why, the other that it was refused there.
    heed::Tensor square = heed::zeros({2, 2});
    heed::Tensor arg = rank == 1 ? square.transpose(0, 1) : square;
    check_throws([&] { dist::all_reduce(arg); }, rank == 1 ? "not contiguous" : "refused on that rank",
                 "a non-contiguous tensor on rank 1 only");
    // The group still works after those errors.
    heed::Tensor one = heed::ones({1});
    dist::all_reduce(one);
    check(equal(one, std::vector<float>{static_cast<float>(world)}), "all_reduce after the errors: " + one.str());
  }

  dist::barrier();
  dist::finalize();
  check(!dist::is_initialized(), "is_initialized() after finalize()");
  check_throws([] { dist::init(); }, "after dist::finalize()", "init() after finalize()");
  return rank_check::report(world);
}
