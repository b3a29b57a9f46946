"""Strong scaling: a fixed set of CPU-bound tasks on 1, 2, 4, 8... workers.

argv: n tasks workers... -> `tasks` tasks of work(n) for each worker count k: on k threads
(thread i runs tasks i, i+k, i+2k, ...; CPython's GIL keeps them from scaling), and on a
warm Pool(k) with fork (started, one warm-up map, then timed). Prints "threads_<k> <s>" and
"pool_<k> <s>" for each k.
"""

import multiprocessing
import sys
import threading
import time


def work(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s


def on_threads(n, tasks, k):
    """The tasks split over k threads; the sum of all their results."""
    sums = [0] * k

    def share(i):
        sums[i] = sum(work(n) for _ in range(i, tasks, k))

    threads = [threading.Thread(target=share, args=(i,)) for i in range(k)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sums)


def main():
    n, tasks = int(sys.argv[1]), int(sys.argv[2])
    one = work(n)
    context = multiprocessing.get_context("fork")
    for k in map(int, sys.argv[3:]):
        started = time.perf_counter()
        total = on_threads(n, tasks, k)
        print(f"threads_{k} {time.perf_counter() - started}")
        if total != one * tasks:
            raise RuntimeError(f"{k} threads: total {total}")
        with context.Pool(k) as pool:
            pool.map(work, [1] * k, chunksize=1)  # warm-up
            started = time.perf_counter()
            results = pool.map(work, [n] * tasks, chunksize=1)
            print(f"pool_{k} {time.perf_counter() - started}")
        if results != [one] * tasks:
            raise RuntimeError(f"Pool({k}): {results}")


if __name__ == "__main__":
    main()
