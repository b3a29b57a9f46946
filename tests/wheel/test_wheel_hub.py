"""A class on JupyterHub whose users' environment got the kernel from the wheel: the users'
servers run on a fresh venv with JupyterHub's single-user server, JupyterLab and the wheel
(no cargo on PATH, no repository on the path, no kernelspec but the wheel's), and two
students run notebook 02 at once on the "rhai" kernel, which must be the wheel's binary.

The hub itself, its proxy and the checks (nothing left running, nothing left in /dev/shm)
are those of tests/clients/test_jupyterhub.py."""

import pathlib
import sys
from importlib.metadata import version

import psutil
import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "clients"))
import test_jupyterhub as class_on_a_hub  # noqa: E402
from test_wheel import fresh_venv_with_the_wheel  # noqa: E402

STUDENTS = ["student0", "student1"]


@pytest.fixture(scope="module")
def users_venv(tmp_path_factory):
    """The users' environment: a fresh venv with the hub's single-user server (the same
    JupyterHub version as the hub), JupyterLab and the wheel, and the hub's environment."""
    return fresh_venv_with_the_wheel(
        tmp_path_factory.mktemp("users"), [f"jupyterhub=={version('jupyterhub')}", "jupyterlab"]
    )


def test_two_students_run_notebook_02_with_the_kernel_from_the_wheel(tmp_path, users_venv):
    venv, env = users_venv
    with class_on_a_hub.running_hub(tmp_path, venv / "bin" / "python", env) as hub:
        results = class_on_a_hub.students_run_notebook_02(hub, STUDENTS)
        for name in STUDENTS:
            binaries = {
                pathlib.Path(exe).resolve()
                for exe in (safe_exe(p) for p in psutil.process_iter() if user_of(p) == name)
                if exe.endswith("rhai-kernel")
            }
            assert binaries, f"{name}: no rhai-kernel process"
            assert all(venv.resolve() in b.parents for b in binaries), (
                f"{name}: the kernel is not the wheel's binary in the users' venv: {binaries}"
            )
        class_on_a_hub.shut_kernels_down(results)


def user_of(process):
    """The hub user whose server started `process`, if any."""
    try:
        return process.environ().get("JUPYTERHUB_USER")
    except psutil.Error:
        return None


def safe_exe(process):
    try:
        return process.exe()
    except psutil.Error:
        return ""
