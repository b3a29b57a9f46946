"""CPU-bound tasks: serial, on 2 threads, on ThreadPoolExecutor(2), on Pool(2) (fork) cold
and warm.

argv: "calibrate" n -> prints "task <s>" for one work(n).
argv: "run" n       -> 4 tasks of work(n); prints "serial", "threads", "threads_gil",
                       "thread_pool", "thread_pool_gil", "pool_cold", "pool_warm": seconds
                       for all 4 tasks. CPython's threads always run under its GIL, so the
                       "_gil" keys repeat the same measurement.
"""

import concurrent.futures
import multiprocessing
import sys
import threading
import time


def work(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s


def timed(label, run):
    """Run run(), print its duration under label, return its result."""
    started = time.perf_counter()
    result = run()
    print(f"{label} {time.perf_counter() - started}")
    return result


def on_two_threads(n):
    """4 tasks on 2 threads, 2 tasks each; returns each thread's sum."""
    sums = [0, 0]

    def two_tasks(slot):
        sums[slot] = work(n) + work(n)

    threads = [threading.Thread(target=two_tasks, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sums


def on_thread_pool(tasks):
    """The tasks on a fresh ThreadPoolExecutor(2), one per item; its start and shutdown
    included."""
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        return list(executor.map(work, tasks))


def check(results, expected, what):
    if results != expected:
        raise RuntimeError(f"{what}: got {results}")


def run(n):
    tasks = [n] * 4
    serial = timed("serial", lambda: [work(t) for t in tasks])
    check(timed("threads", lambda: on_two_threads(n)), [serial[0] * 2] * 2, "threads")
    # CPython's threads always run under its GIL: the same measurement again.
    check(timed("threads_gil", lambda: on_two_threads(n)), [serial[0] * 2] * 2, "threads")
    check(timed("thread_pool", lambda: on_thread_pool(tasks)), serial, "thread pool")
    check(timed("thread_pool_gil", lambda: on_thread_pool(tasks)), serial, "thread pool")
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    with context.Pool(2) as pool:
        cold = pool.map(work, tasks, chunksize=1)
        print(f"pool_cold {time.perf_counter() - started}")
        check(cold, serial, "cold pool")
        check(timed("pool_warm", lambda: pool.map(work, tasks, chunksize=1)), serial, "warm pool")


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == "calibrate":
        timed("task", lambda: work(n))
    else:
        run(n)


if __name__ == "__main__":
    main()
