"""Start+join cost of threads and processes running a trivial function.

argv: threads processes. Prints "thread <s>" and "process_<method> <s>" for the fork,
spawn and forkserver start methods: mean seconds per start+join.
"""

import multiprocessing
import sys
import threading
import time


def trivial():
    return 0


def per_start(start_one, count):
    """Mean seconds of start_one() over count calls, after one untimed warm-up."""
    start_one()
    started = time.perf_counter()
    for _ in range(count):
        start_one()
    return (time.perf_counter() - started) / count


def thread_once():
    worker = threading.Thread(target=trivial)
    worker.start()
    worker.join()


def process_once(context):
    worker = context.Process(target=trivial)
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise RuntimeError(f"process exited with {worker.exitcode}")


def main():
    threads, processes = int(sys.argv[1]), int(sys.argv[2])
    print(f"thread {per_start(thread_once, threads)}")
    for method in ("fork", "spawn", "forkserver"):
        context = multiprocessing.get_context(method)
        print(f"process_{method} {per_start(lambda: process_once(context), processes)}")


if __name__ == "__main__":
    main()
