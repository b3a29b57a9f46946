"""Fixtures of the real-client tests: a private Jupyter environment per test, and a check that
no kernel process outlives its test."""

import os
import time

import pytest
from client_support import kernel_binary, private_env, processes_of


@pytest.fixture
def jupyter_env(tmp_path):
    """Environment for a Jupyter client, in private dirs (IPython's too, for the console)."""
    return private_env(tmp_path / "jupyter", IPYTHONDIR="ipython")


@pytest.fixture(autouse=True)
def no_orphan_kernels():
    """Fails the test if a kernel or worker process it started is still alive 20 s after it."""
    binary = kernel_binary()
    before = processes_of(binary)
    yield
    deadline = time.monotonic() + 20
    while (left := processes_of(binary) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    assert not left, f"kernel processes left running after the test: {sorted(left)}"
