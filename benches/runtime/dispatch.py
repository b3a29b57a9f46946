"""Per-task dispatch cost of a warm Pool(2) (fork): imap_unordered over trivial tasks
with chunksize 1, consumed fully.

argv: tasks. Prints "dispatch <s>": mean seconds per task.
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
        raise RuntimeError(f"{len(results)} of {tasks} results")
    print(f"dispatch {elapsed / tasks}")


if __name__ == "__main__":
    main()
