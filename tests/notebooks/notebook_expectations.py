"""Key output strings of each shipped notebook, shared by the nbclient test and the real-client
tests (JupyterLab, nbconvert); and which notebooks need a kernel built with Rust cells."""

import json
import os

import pytest

# Whether the kernelspec under test is a build with Rust cells (cargo feature `rust`): "1" or
# "0", set by the Makefile target that built it (python-test: 1 unless RUST=0;
# rust-cells-test: 1).
RUST_CELLS_ENV = "RHAI_KERNEL_RUST_CELLS"

# Text that must appear in a notebook's outputs (beyond "no cell failed").
EXPECTED = {
    "00-welcome.ipynb": ["Hello from Rhai!", "144", "caught:"],
    "01-threads-vs-processes.ipynb": [
        "Square: 16",
        "Cube: 64",
        "Done with multithreading",
        "Done with multiprocessing",
        "Thread-3 (thread id ",
        "the child process was ",
        "most running at once: 1",
        "most sleeping at once: 4",
        "timeline: ",
        "Thread-",
        "Process-",
        "CPU utilisation",
    ],
    "02-race-conditions.ipynb": [
        # The exercise as given fails; its hidden solution is proven.
        "✘ wrong: ",
        "✔ correct in every schedule",
        "lost updates: ",
        "with add(): counter = 200000, lost updates: 0",
        "Person A sees $100 and withdraws $80",
        "Person B sees $100 and withdraws $80",
        "final balance: -60",
    ],
    "03-locks.ipynb": [
        # The exercise as given fails; its hidden solution is proven.
        "✘ wrong: ",
        "✔ correct in every schedule",
        "threads:   final count: 200000",
        "without the lock: final count: ",
        "gave up: deadlock detected",
        "processes: final count: 200000",
        "balance: 20",
        "declined, only $20 left",
        "after the block: locked = false",
        "caught: something went wrong inside; locked = false",
        "acquire(0.1) returned false",
        "died without releasing it",
        "acquire(5.0) returned true",
        "deadlock detected",
        "(take_in_order): got both locks",
        "which it already holds",
        "consumer got 42",
        "all done, free permits: 2",
        "acquire(2) returned true",
        "cancelled: true, fired: false",
    ],
    "03b-see-the-race.ipynb": [
        # The exercise as given fails; its hidden solution is proven.
        "✘ wrong: ",
        "✔ correct in every schedule",
        "explore: 37 schedules, all of them",
        "37 schedules (all of them: true), 15 lose an update",
        "first failing schedule: 00122",
        "replay \"00122\" → 1",
        "same result: true, same steps: true",
        "processes: 37 schedules, 15 lose an update",
        "Process-2: read counter.value → 0 (preempts)",
        'thread_pool(1): 4 schedules (all of them: true), outcomes #{"2": 4}, races 0',
        'thread_pool(2): 34 schedules (all of them: true), outcomes #{"1": 17, "2": 17}, races 2',
        "locked: 99 schedules, all of them: true, 0 failures",
        "without a bound: 924 schedules, all of them: true, 0 failures",
        'every schedule: 88 (complete: true), outcomes #{"1": 47, "2": 41}',
        'reduced: 4 (complete: true), outcomes #{"1": 2, "2": 2}',
        "overdrawn in 153 of 179 schedules",
        "Thread-2: blocked on a",
        "WARNING: data race on counter.value",
        "races reported: 2",
        "counter = 2000, races: 0",
        "consumer sees 42",
        "No data race found",
        "races in the explored counter: 3, in the locked one: 0",
    ],
    "03c-levels.ipynb": [
        "Level 1: make the count 1",
        "Level 2: overdraw the account",
        "Level 3: deadlock the threads",
        "Level 4: two threads in the critical section",
        "Level 5: two threads in the critical section",
    ],
    "03d-patterns.ipynb": [
        'naive: 2 of 2 schedules fail (all tried: true), outcomes #{"deadlock": 2}',
        "✔ correct in every schedule: 4 of them, outcomes [1, 2, 3] × 4",
        "a later reader overtook the waiting writer in ",
        "philosophers: ",
        "every run right: true",
    ],
    "04-pools.ipynb": [
        # The exercise as given fails; its hidden solution is proven.
        "✘ wrong: ",
        "✔ correct in every schedule",
        "squares: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]",
        "the 0.1 s task finished after",
        "after 0.3 s: 1 done, 1 not done",
        "imap_unordered: task 1 after",
        "sum of the squares of 1..=10: 385",
        "sum of the squares of 1..=1000: 333833500",
        "from 160,000 darts on 2 workers",
        "the same seeds, other chunks, the same estimate: true",
        "7837 primes",
        "result: 42",
        "task 3 failed: three is unlucky",
        "broken pool",
        "the pool works again: [0, 1, 4, 9, 16]",
        "40/40 (100%)",
        "the thread pool is closed",
        "Amdahl, serial fraction",
    ],
    "05-ipc.ipynb": [
        # The exercise as given fails; its hidden solution is proven.
        "✘ wrong: ",
        "✔ correct in every schedule",
        "in the parent: [1, 2, 3]",
        "together: sum 5050",
        "asked for 12², got 144",
        "server: answered 3 requests",
        "worker: stopped",
        "filled by two processes: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
        "pipe round trip",
        "socket round trip",
        "got [100, 400, 900]",
        "answered 3 requests",
        "µs per round trip",
    ],
    "06-rust-vs-rhai.ipynb": [
        # The exercise as given fails; its hidden solution is proven.
        "✘ wrong: ",
        "✔ correct in every schedule",
        "Rhai add(1): counter = 200000, lost updates: 0",
        "Rust fetch_add: counter = 200000, lost updates: 0",
        "Rhai thread_pool(2):",
        "7837 primes",
        "63951 primes",
        "rayon (",
        "Wall time:",
    ],
}


def needs_rust_cells(path):
    """Whether a notebook has `%%rust` cells."""
    cells = json.loads(path.read_text())["cells"]
    return any(
        cell["cell_type"] == "code" and "".join(cell["source"]).lstrip().startswith("%%rust")
        for cell in cells
    )


def kernel_built_with_rust_cells():
    """Whether the kernel under test was built with Rust cells, as the Makefile declares it.
    Decided by the build, not by what the kernel says of itself: a feature build whose Rust
    cells are broken must fail its notebooks, not have them skipped."""
    value = os.environ.get(RUST_CELLS_ENV)
    if value not in ("0", "1"):
        pytest.fail(
            f"{RUST_CELLS_ENV} must say whether the kernel was built with Rust cells (1 or 0); "
            "run the tests through make python-test or make rust-cells-test"
        )
    return value == "1"


def skip_reason(path):
    """Why a notebook cannot run on this kernel, or None."""
    if needs_rust_cells(path) and not kernel_built_with_rust_cells():
        return (
            f"{path.name} has Rust cells and this kernel was built without them "
            "(make release, without RUST=0, builds a kernel with them)"
        )
    return None
