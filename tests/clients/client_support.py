"""Helpers of the real-client tests: paths, the notebooks and their expected outputs, the
kernel binary and its live processes."""

import os
import pathlib
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OUTPUT_DIR = ROOT / "target" / "test-output"

sys.path.insert(0, str(ROOT / "tests" / "notebooks"))
from notebook_expectations import EXPECTED, skip_reason  # noqa: E402,F401  (re-exported to the tests)


def kernel_binary():
    """The executable the "rhai" kernelspec (from JUPYTER_PATH, as the Makefile sets it) starts."""
    try:
        spec = KernelSpecManager().get_kernel_spec("rhai")
    except Exception as error:  # NoSuchKernel
        pytest.fail(f'no "rhai" kernelspec on JUPYTER_PATH (run through `make python-test`): {error}')
    return os.path.realpath(spec.argv[0])


def processes_of(binary):
    """Pids of the live processes running `binary` (kernels and their worker processes)."""
    pids = set()
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.path.realpath(entry / "exe") == binary:
                    pids.add(int(entry.name))
            except OSError:
                pass  # gone, or a zombie
    return pids


def kill_kernels_in(runtime_dir):
    """Kills the kernels whose connection file is in `runtime_dir`: a client that was killed
    (after a failure) could not shut its kernel down."""
    for pid in processes_of(kernel_binary()):
        try:
            if str(runtime_dir).encode() in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 9)
        except OSError:
            pass


def strip_outputs(src, dst):
    """Copies a notebook without its saved outputs and counts, so a test sees only fresh ones."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, dst)


def private_env(base, **extra_dirs):
    """The environment with private Jupyter config, data and runtime dirs under `base` (plus
    `extra_dirs`, variable=name), so nothing of the user's is read or written; JUPYTER_PATH, as
    the Makefile sets it, still gives the kernelspec."""
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1")
    dirs = dict(JUPYTER_CONFIG_DIR="config", JUPYTER_DATA_DIR="data", JUPYTER_RUNTIME_DIR="runtime")
    for var, name in {**dirs, **extra_dirs}.items():
        env[var] = str(base / name)
        os.makedirs(env[var], exist_ok=True)
    return env


# A function that takes a lock and increments a value, run by two threads: the cell the
# debugger tests stop inside the critical section (line 3). Its value is the final count, 2.
LOCK_CELL = """fn work(l, v) {
    l.acquire();
    v.value += 1;
    l.release();
}
let l = lock();
let v = value(0);
let a = spawn_thread(work, l, v);
let b = spawn_thread(work, l, v);
a.join();
b.join();
v.value"""
