"""Per-task dispatch cost of a warm Pool(2) (fork): imap_unordered over trivial tasks
with chunksize 1, consumed fully, and map with the default chunksize.

argv: tasks. Prints "dispatch" (imap_unordered, chunksize 1) and "dispatch_default" (map,
default chunksize): mean seconds per task; "captured": mean seconds per task of 16 tasks
(chunksize 1) of a function bound to a 100,000-entry dict with functools.partial (a
lambda cannot be pickled), sent with every task as Pool.map does.
"""

import functools

import multiprocessing
import sys
import time


def trivial(x):
    return x


def size_plus(big, x):
    return len(big) + x


def main():
    tasks = int(sys.argv[1])
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(trivial, [0, 1], chunksize=1)  # warm-up: both workers running
        started = time.perf_counter()
        results = list(pool.imap_unordered(trivial, range(tasks), chunksize=1))
        elapsed = time.perf_counter() - started
        if len(results) != tasks:
            raise RuntimeError(f"imap_unordered: {len(results)} of {tasks} results")
        print(f"dispatch {elapsed / tasks}")
        started = time.perf_counter()
        results = pool.map(trivial, range(tasks))
        elapsed = time.perf_counter() - started
        if results != list(range(tasks)):
            raise RuntimeError("map: wrong results")
        print(f"dispatch_default {elapsed / tasks}")
        big = {f"key{i}": i for i in range(100000)}
        started = time.perf_counter()
        sizes = pool.map(functools.partial(size_plus, big), range(16), chunksize=1)
        elapsed = time.perf_counter() - started
        if sizes != [100000 + i for i in range(16)]:
            raise RuntimeError("captured: wrong results")
        print(f"captured {elapsed / 16}")


if __name__ == "__main__":
    main()
