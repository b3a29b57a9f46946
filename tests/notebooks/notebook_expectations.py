"""Key output strings of each shipped notebook, shared by the nbclient test and the real-client
tests (JupyterLab, nbconvert); and which notebooks need a kernel built with Rust cells."""

import functools
import json

# Text that must appear in a notebook's outputs (beyond "no cell failed").
EXPECTED = {
    "00-welcome.ipynb": ["Hello from Rhai!", "144", "caught:"],
    "01-threads-vs-processes.ipynb": [
        "Square: 16",
        "Cube: 64",
        "Done with multithreading",
        "Done with multiprocessing",
        "most running at once: 1",
        "most sleeping at once: 4",
        "timeline: ",
        "Thread-",
        "Process-",
        "CPU utilisation",
    ],
    "02-race-conditions.ipynb": [
        "lost updates: ",
        "with add(): counter = 200000, lost updates: 0",
        "Person A sees $100 and withdraws $80",
        "Person B sees $100 and withdraws $80",
        "final balance: -60",
    ],
    "03-locks.ipynb": [
        "threads:   final count: 200000",
        "processes: final count: 200000",
        "balance: 20",
        "declined, only $20 left",
        "acquire(0.1) returned false",
        "died without releasing it",
        "acquire(5.0) returned true",
        "deadlock detected",
        "(take_in_order): got both locks",
        "which it already holds",
        "consumer got 42",
        "all done, free permits: 2",
    ],
    "04-pools.ipynb": [
        "squares: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]",
        "sum of the squares of 1..=10: 385",
        "sum of the squares of 1..=1000: 333833500",
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
        "in the parent: [1, 2, 3]",
        "together: sum 5050",
        "asked for 12², got 144",
        "server: answered 3 requests",
        "worker: stopped",
        "filled by two processes: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
        "pipe round trip",
        "µs per round trip",
    ],
    "06-rust-vs-rhai.ipynb": [
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


@functools.lru_cache(maxsize=None)
def kernel_has_rust_cells(kernel_name="rhai"):
    """Whether the kernel was built with Rust cells (its banner says so): the default build, which
    `make test` uses for the notebooks, has none, so notebooks with `%%rust` cells are skipped."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=kernel_name)
    try:
        return "%%rust" in client.kernel_info(reply=True, timeout=30)["content"]["banner"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def skip_reason(path):
    """Why a notebook cannot run on this kernel, or None."""
    if needs_rust_cells(path) and not kernel_has_rust_cells():
        return (
            f"{path.name} has Rust cells and this kernel was built without them "
            "(make release RUST=1 for a kernel with them)"
        )
    return None
