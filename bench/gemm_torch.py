#!/usr/bin/python3
"""torch.mm throughput for the same square float32 sizes as gemm_bench.

Prints one JSON object per line in gemm_bench's format, plus a first line that
names the BLAS library torch actually loaded: Debian's torch calls whatever
libblas.so.3 the system provides (reference BLAS unless OpenBLAS or BLIS is
installed), and the numbers mean little without knowing which.

    /usr/bin/python3 bench/gemm_torch.py [--threads 2] [--sizes 256,512,1024,2048]
"""
import argparse
import json
import time

import torch


def loaded_blas():
    """Paths of the BLAS-like shared libraries mapped into this process."""
    names = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            base = path.rsplit("/", 1)[-1]
            if any(key in base for key in ("blas", "blis", "mkl")):
                names.add(path)
    return sorted(names)


def bench_size(n, min_time):
    torch.manual_seed(42)
    a = torch.rand(n, n) * 2 - 1
    b = torch.rand(n, n) * 2 - 1
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)  # warm-up
    best, total, reps = float("inf"), 0.0, 0
    while (total < min_time or reps < 5) and reps < 1000:
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        s = time.perf_counter() - t0
        best = min(best, s)
        total += s
        reps += 1
    return 2.0 * n ** 3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="256,512,1024,2048")
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    # Load the BLAS (lazily bound on first use) before looking for it.
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    print(json.dumps({"torch": torch.__version__, "blas": loaded_blas()}), flush=True)
    for n in sizes:
        gflops = bench_size(n, args.min_time)
        print(json.dumps({"impl": "torch", "threads": args.threads, "size": n,
                          "gflops": round(gflops, 1)}), flush=True)


if __name__ == "__main__":
    main()
