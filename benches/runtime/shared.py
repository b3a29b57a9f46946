"""Cross-process shared state (fork): locked increments of a multiprocessing Value by 2
processes, and round trips through a Queue and a Pipe to an echoing process.

argv: increments (per process) round_trips. Prints "increments <s>" (total), "count <n>"
(final value), "queue <s>" and "pipe <s>" (mean seconds per round trip). The Value has no
lock of its own (lock=False): the separate Lock is what guards it, as in the Rhai script.
"""

import multiprocessing
import sys
import time

CONTEXT = multiprocessing.get_context("fork")


def increment(value, lock, n):
    for _ in range(n):
        with lock:
            value.value += 1


def echo_queue(inbox, outbox, n):
    for _ in range(n):
        outbox.put(inbox.get())


def echo_pipe(end, n):
    for _ in range(n):
        end.send(end.recv())


def started(target, *args):
    process = CONTEXT.Process(target=target, args=args)
    process.start()
    return process


def joined(process):
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"process exited with {process.exitcode}")


def locked_increments(increments):
    value, lock = CONTEXT.Value("q", 0, lock=False), CONTEXT.Lock()
    begin = time.perf_counter()
    workers = [started(increment, value, lock, increments) for _ in range(2)]
    for worker in workers:
        joined(worker)
    print(f"increments {time.perf_counter() - begin}")
    print(f"count {value.value}")


def round_trip(send, receive, echo, round_trips):
    """Mean seconds per send+receive, after one untimed round trip so echo is running."""
    send(0)
    receive()
    begin = time.perf_counter()
    for i in range(round_trips):
        send(i)
        receive()
    elapsed = time.perf_counter() - begin
    joined(echo)
    return elapsed / round_trips


def main():
    increments, round_trips = int(sys.argv[1]), int(sys.argv[2])
    locked_increments(increments)
    inbox, outbox = CONTEXT.Queue(), CONTEXT.Queue()
    echo = started(echo_queue, inbox, outbox, round_trips + 1)
    print(f"queue {round_trip(inbox.put, outbox.get, echo, round_trips)}")
    near, far = CONTEXT.Pipe()
    echo = started(echo_pipe, far, round_trips + 1)
    print(f"pipe {round_trip(near.send, near.recv, echo, round_trips)}")


if __name__ == "__main__":
    main()
