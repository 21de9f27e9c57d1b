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


def bench_shape(m, n, k, layout, min_time):
    """C[m, n] = A[m, k] B[k, n], A or B stored transposed as gemm_bench's layouts say."""
    torch.manual_seed(42)
    a = torch.rand(k, m).t() if layout == "tn" else torch.rand(m, k)
    b = torch.rand(n, k).t() if layout == "nt" else torch.rand(k, n)
    c = torch.empty(m, n)
    torch.mm(a, b, out=c)  # warm-up
    best, total, reps = float("inf"), 0.0, 0
    while (total < min_time or reps < 5) and reps < 1000:
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        s = time.perf_counter() - t0
        best = min(best, s)
        total += s
        reps += 1
    return 2.0 * m * n * k / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="256,512,1024,2048")
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--shapes", default="", help="MxNxK:nn|nt|tn,... instead of square sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    # Load the BLAS (lazily bound on first use) before looking for it.
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    print(json.dumps({"torch": torch.__version__, "blas": loaded_blas()}), flush=True)
    shapes = [s for s in args.shapes.split(",") if s]
    for n in [] if shapes else sizes:
        gflops = bench_shape(n, n, n, "nn", args.min_time)
        print(json.dumps({"impl": "torch", "threads": args.threads, "size": n,
                          "gflops": round(gflops, 1)}), flush=True)
    for shape in shapes:
        dims, layout = shape.split(":")
        m, n, k = (int(x) for x in dims.split("x"))
        gflops = bench_shape(m, n, k, layout, args.min_time)
        print(json.dumps({"impl": "torch", "threads": args.threads, "shape": shape,
                          "gflops": round(gflops, 1)}), flush=True)


if __name__ == "__main__":
    main()
