"""The CPython side of observe.rhai: the same programs run plainly (CPython has no race
detector or schedule explorer for Python code to compare with).

argv: n rounds. Prints "plain" (2 threads doing `n` unlocked increments each of one
multiprocessing.Value without its lock, seconds) and "program_once" (the mean time of one
run of the two-increment program that observe.rhai explores: start 2 threads that add 1
each, join them, read the value), and "schedules" (1: it runs one schedule per run).
"""

import multiprocessing
import sys
import threading
import time


def bump(counter, n):
    for _ in range(n):
        counter.value += 1


def two_threads(n):
    counter = multiprocessing.Value("q", 0, lock=False)
    workers = [threading.Thread(target=bump, args=(counter, n)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def two_increments():
    counter = multiprocessing.Value("q", 0, lock=False)
    workers = [threading.Thread(target=bump, args=(counter, 1)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return counter.value


def main():
    n, rounds = int(sys.argv[1]), int(sys.argv[2])
    two_threads(1000)
    begin = time.perf_counter()
    two_threads(n)
    print(f"plain {time.perf_counter() - begin}")
    runs = rounds * 37
    begin = time.perf_counter()
    for _ in range(runs):
        two_increments()
    print(f"program_once {(time.perf_counter() - begin) / runs}")
    print("schedules 1")


if __name__ == "__main__":
    main()
