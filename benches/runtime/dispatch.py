"""Per-task dispatch cost of a warm Pool(2) (fork): imap_unordered over trivial tasks
with chunksize 1, consumed fully, and map with the default chunksize.

argv: tasks. Prints "dispatch" (imap_unordered, chunksize 1) and "dispatch_default" (map,
default chunksize): mean seconds per task.
"""

import multiprocessing
import sys
import time


def trivial(x):
    return x


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


if __name__ == "__main__":
    main()
