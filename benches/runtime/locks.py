"""Lock acquire+release pairs: uncontended (one thread; threading.Lock and, for comparison,
multiprocessing.Lock), contended by 2 threads on a threading.Lock and by 2 processes (fork)
on a multiprocessing.Lock.

argv: pairs. Prints "lock_uncontended", "lock_uncontended_mp", "lock_with" (threading.Lock
through `with lock: pass`), "lock_threads" and "lock_processes": mean seconds per
acquire+release over `pairs` pairs in all (the 2
contenders do half each). Contended runs are timed from a barrier that both contenders and
the main thread pass until both contenders report on a queue that they are done, so
starting and joining is excluded, as in the Rhai script.
"""

import multiprocessing
import queue
import sys
import threading
import time

CONTEXT = multiprocessing.get_context("fork")


def pairs_on(lock, n):
    for _ in range(n):
        lock.acquire()
        lock.release()


def contender(lock, n, start, done):
    start.wait()
    pairs_on(lock, n)
    done.put(n)


def with_on(lock, n):
    for _ in range(n):
        with lock:
            pass


def uncontended(lock, pairs, pairs_on=pairs_on):
    """Mean seconds per pair on one thread, after an untimed warm-up."""
    pairs_on(lock, 100)
    begin = time.perf_counter()
    pairs_on(lock, pairs)
    return (time.perf_counter() - begin) / pairs


def contended(worker, lock, start, done, half):
    """Mean seconds per pair while 2 workers (threads or processes) share the lock."""
    workers = [worker(target=contender, args=(lock, half, start, done)) for _ in range(2)]
    for w in workers:
        w.start()
    start.wait()
    begin = time.perf_counter()
    total = done.get() + done.get()
    elapsed = time.perf_counter() - begin
    for w in workers:
        w.join()
        if getattr(w, "exitcode", 0) != 0:
            raise RuntimeError(f"contender exited with {w.exitcode}")
    return elapsed / total


def main():
    half = int(sys.argv[1]) // 2
    print(f"lock_uncontended {uncontended(threading.Lock(), 2 * half)}")
    print(f"lock_uncontended_mp {uncontended(CONTEXT.Lock(), 2 * half)}")
    print(f"lock_with {uncontended(threading.Lock(), 2 * half, with_on)}")
    threads = contended(threading.Thread, threading.Lock(), threading.Barrier(3),
                        queue.Queue(), half)
    print(f"lock_threads {threads}")
    processes = contended(CONTEXT.Process, CONTEXT.Lock(), CONTEXT.Barrier(3),
                          CONTEXT.Queue(), half)
    print(f"lock_processes {processes}")


if __name__ == "__main__":
    main()
