"""The wheel as a learner gets it: `make wheel`'s wheel is manylinux_2_28 (auditwheel), and
installed into a fresh venv that has only JupyterLab and nbclient, with no cargo on PATH and
no repository on the path, it shows the kernelspec and runs the first notebooks under nbclient;
a Rust cell there is a UsageError that says how to get Rust cells."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).parents[2]
sys.path.insert(0, str(REPO / "tests" / "notebooks"))
from notebook_expectations import EXPECTED  # noqa: E402

NOTEBOOKS = [
    "00-welcome.ipynb",
    "01-threads-vs-processes.ipynb",
    "02-race-conditions.ipynb",
    "03-locks.ipynb",
    "03b-see-the-race.ipynb",
    "04-pools.ipynb",
    "05-ipc.ipynb",
]

# Run by the fresh venv's Python, from a directory outside the repository: executes each
# notebook named on the command line on the "rhai" kernel and saves it executed.
DRIVER = """
import sys
import nbformat
from nbclient import NotebookClient

for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    allow = path.endswith("rust-cell.ipynb")
    NotebookClient(nb, kernel_name="rhai", timeout=120, allow_errors=allow).execute()
    nbformat.write(nb, path)
    print("ran", path, flush=True)
"""


def wheel_path():
    wheels = sorted((REPO / "target" / "wheels").glob("rhai_kernel-*.whl"))
    named = os.environ.get("RHAI_KERNEL_WHEEL")
    if named:
        return pathlib.Path(named)
    if not wheels:
        pytest.fail("no wheel in target/wheels: run `make wheel`")
    return wheels[-1]


def path_without_cargo(venv_bin):
    """PATH with the venv first and no directory that holds cargo or rustc."""
    keep = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any(os.path.exists(os.path.join(d, tool)) for tool in ("cargo", "rustc"))
    ]
    return os.pathsep.join([str(venv_bin)] + keep)


def fresh_venv_with_the_wheel(root, packages, **extra_env):
    """A fresh venv in `root` with `packages` and the wheel, installed and to be used with an
    environment that has no cargo on PATH and none of this checkout's Jupyter, Python or
    kernel settings (plus `extra_env`); returns the venv and that environment."""
    venv = root / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "VIRTUAL_ENV", "PYTHON", "CARGO", "RUST", "RHAI_KERNEL"))
    }
    env.update(PATH=path_without_cargo(venv / "bin"), PIP_DISABLE_PIP_VERSION_CHECK="1", **extra_env)
    assert shutil.which("cargo", path=env["PATH"]) is None
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + packages + [str(wheel_path())], check=True, env=env, cwd=root)
    return venv, env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with jupyterlab, nbclient and the wheel, and the environment to use it."""
    home = tmp_path_factory.mktemp("learner")
    venv, env = fresh_venv_with_the_wheel(
        home,
        ["jupyterlab", "nbclient"],
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        RHAI_KERNEL_HISTORY="off",
    )
    return venv, env, home


def test_the_wheel_is_manylinux_2_28_or_older():
    wheel = wheel_path()
    assert re.search(r"-py3-none-manylinux_2_(\d+)_x86_64\.", wheel.name), wheel.name
    out = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # "... is consistent with the following platform tag: "manylinux_2_28_x86_64"."
    tags = re.findall(r'platform tag:\s*"manylinux_2_(\d+)_x86_64"', " ".join(out.split()))
    assert tags, out
    assert int(tags[0]) <= 28, out


def test_the_kernelspec_is_in_the_venv_and_finds_the_binary(installed):
    venv, env, home = installed
    listing = subprocess.run(
        [str(venv / "bin" / "jupyter"), "kernelspec", "list", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
    ).stdout
    spec = json.loads(listing)["kernelspecs"]["rhai"]
    assert pathlib.Path(spec["resource_dir"]).resolve().is_relative_to(venv.resolve()), spec
    assert spec["spec"]["argv"][:3] == ["python", "-m", "rhai_kernel"], spec
    assert (venv / "bin" / "rhai-kernel").is_file()
    # The command-line host runs from the same install.
    script = home / "hello.rhai"
    script.write_text('print("from the wheel " + (40 + 2));\n')
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "rhai_kernel", "run", str(script)],
        check=True, capture_output=True, text=True, env=env, cwd=home,
    ).stdout
    assert out == "from the wheel 42\n"


def test_notebooks_run_from_the_wheel(installed):
    venv, env, home = installed
    work = home / "notebooks"
    work.mkdir(exist_ok=True)
    for name in NOTEBOOKS:
        shutil.copy(REPO / "notebooks" / name, work / name)
    rust = nbformat.v4.new_notebook()
    rust.cells = [
        nbformat.v4.new_code_cell('%%rust\nprintln!("hi");'),
        nbformat.v4.new_code_cell("40 + 2"),
    ]
    nbformat.write(rust, work / "rust-cell.ipynb")
    driver = home / "driver.py"
    driver.write_text(DRIVER)
    subprocess.run(
        [str(venv / "bin" / "python"), str(driver)] + NOTEBOOKS + ["rust-cell.ipynb"],
        check=True,
        env=env,
        cwd=work,
        timeout=1800,
    )
    for name in NOTEBOOKS:
        nb = nbformat.read(work / name, as_version=4)
        outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
        errors = [out for out in outputs if out.output_type == "error"]
        assert not errors, f"{name}: cells failed: {errors}"
        text = "\n".join(
            out.text if out.output_type == "stream" else "\n".join(str(v) for v in out.get("data", {}).values())
            for out in outputs
        )
        for expected in EXPECTED.get(name, []):
            assert expected in text, f"{expected!r} not in the outputs of {name}"

    nb = nbformat.read(work / "rust-cell.ipynb", as_version=4)
    error = nb.cells[0].outputs[0]
    assert error.output_type == "error" and error.ename == "UsageError", error
    assert "built without Rust cells" in error.evalue and "Rust toolchain" in error.evalue, error
    assert nb.cells[1].outputs[0].data["text/plain"] == "42"
