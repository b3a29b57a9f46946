# A class image: JupyterLab with the Rhai kernel and the course's notebooks in the home
# directory, for Zero to JupyterHub (singleuser.image), The Littlest JupyterHub or plain
# `docker run -p 8888:8888 IMAGE`. Built in two stages: the wheel (`make wheel`'s, without
# Rust cells), then a Jupyter Docker Stacks runtime that installs it.
#   docker build -t rhai-class .

# ---- build: the wheel, from a Rust toolchain the crate supports (Cargo.toml rust-version).
FROM rust:1.95-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin \
    && /opt/maturin/bin/pip install --no-cache-dir "maturin>=1.5,<2"
WORKDIR /src
COPY . .
# The runtime image's glibc is newer than this stage's, so a wheel tagged for this stage's
# glibc installs there; `make wheel` builds the portable manylinux_2_28 one with zig.
RUN /opt/maturin/bin/maturin build --release --out /wheels

# ---- runtime: the Jupyter Docker Stacks' minimal notebook image (JupyterLab, a non-root
# user, JupyterHub's single-user server).
# The python-3.12 tag follows the stacks' rebuilds of that Python; pin a dated tag for a term.
FROM quay.io/jupyter/minimal-notebook:python-3.12
COPY --from=build /wheels/ /tmp/wheels/
COPY requirements-lab.txt /tmp/requirements-lab.txt
# The wheel puts the binary in the environment's bin and the kernelspec in its
# share/jupyter/kernels/rhai; requirements-lab.txt adds the widget manager `play` uses.
RUN pip install --no-cache-dir -r /tmp/requirements-lab.txt /tmp/wheels/rhai_kernel-*.whl \
    && rm -rf /tmp/wheels /tmp/requirements-lab.txt \
    && fix-permissions "${CONDA_DIR}"
COPY --chown=${NB_UID}:${NB_GID} notebooks/ /home/${NB_USER}/notebooks/
WORKDIR /home/${NB_USER}/notebooks
