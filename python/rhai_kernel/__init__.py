"""The Rhai kernel for Jupyter, as installed by pip: the `rhai-kernel` binary sits in the
environment's scripts directory, and the kernelspec in its share/jupyter/kernels/rhai.

The kernelspec starts the kernel as `python -m rhai_kernel kernel ...` (Jupyter replaces a
leading `python` with its own interpreter), so it finds the binary wherever pip put it."""

import os
import shutil
import sys
import sysconfig

BINARY = "rhai-kernel"


def find_binary():
    """The path of the `rhai-kernel` binary installed with this package, or None."""
    dirs = [sysconfig.get_path("scripts")]
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        dirs.append(sysconfig.get_path("scripts", user_scheme))
    dirs.append(os.path.dirname(sys.executable))
    for directory in dirs:
        path = os.path.join(directory, BINARY)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which(BINARY)


def main():
    """Replaces this Python process with the binary, passing the arguments on (so Jupyter
    signals and waits for the kernel itself)."""
    path = find_binary()
    if path is None:
        sys.exit(f"{BINARY}: the binary is not installed next to this Python ({sys.executable}); "
                 "reinstall with `pip install --force-reinstall rhai-kernel`")
    os.execv(path, [path] + sys.argv[1:])
