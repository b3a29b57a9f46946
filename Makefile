# rhai-kernel: build, test and try the kernel.
#   make lab    build, create .venv with JupyterLab (and jupyterlab_widgets, which draws
#               play's board; requirements-lab.txt, no test tools), install the kernelspec,
#               open notebooks/
#   make test   everything: lint, cargo test, the Jupyter conformance suite, notebooks, real
#               clients (JupyterLab in chromium, jupyter console, nbconvert), and Rust cells
#   make bench  benchmarks side by side with ipykernel and CPython, written to BENCHMARKS.md
#               (and the scaling chart to BENCHMARKS-scaling.svg), with the schedule
#               explorer's rows on benches/explore/classics.rhai (only those, into an existing
#               BENCHMARKS.md: benches/runtime_bench.py --explore-only --write BENCHMARKS.md)
#   make wheel  the wheel learners install with pip (no compiler needed where it is installed):
#               the binary without Rust cells, for manylinux_2_28, and the kernelspec, in
#               target/wheels (docs/install.md)
#   make rhai-upstream-test RHAI_SRC=path   Rhai's own tests against the patched copy in
#               vendor/ (vendor/README.md)
#   make profile where scripts spend their time (needs Linux perf): benches/profile/*.rhai
#               under perf, samples by owner (Rhai, this crate, libc, kernel), in
#               target/profile/profile.md
#   RUST=0      (make lab RUST=0, make release RUST=0) builds the kernel without Rust cells
#               (`%%rust`, through evcxr): a shorter first build, and notebook 06 cannot run

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Make the venv's kernelspec win over any user-level "rhai" kernelspec.
JUPYTER_ENV := JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter VIRTUAL_ENV=$(CURDIR)/$(VENV)

.PHONY: all build release lab test lint rust-test rust-cells-test python-test curve-test \
	kernelspec wheel wheel-test bench rhai-upstream-test profile clean

# Rust cells (cargo feature `rust`, evcxr) are on by default, so the kernel `make lab`
# installs runs every shipped notebook; evcxr makes the first build longer (see docs/rust-cells.md).
# That build uses its own profile (see Cargo.toml) and directory.
RUST ?= 1
WITH_RUST := $(filter 1 yes true,$(RUST))
BUILD_FLAGS := $(if $(WITH_RUST),--features rust --profile rust-cells,--release)
RELEASE_BIN := $(if $(WITH_RUST),target/rust-cells/rhai-kernel,target/release/rhai-kernel)

all: build

build:
	cargo build

release:
	cargo build $(BUILD_FLAGS)

# Two stamps: `make lab` installs only what the lab needs (requirements-lab.txt); the tests
# add their stack (tests/requirements.txt, which includes the lab's), so `make test` after
# `make lab` still installs it.
$(VENV)/.lab-stamp: requirements-lab.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements-lab.txt
	touch $@

$(VENV)/.test-stamp: tests/requirements.txt requirements-lab.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r tests/requirements.txt
	touch $@

kernelspec: release $(VENV)/.lab-stamp
	$(JUPYTER_ENV) $(RELEASE_BIN) install --sys-prefix

# Jupyter refuses to run as root unless told to (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: kernelspec
	$(JUPYTER_ENV) $(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks $(ALLOW_ROOT)

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

rust-test:
	cargo test

# Rust cells: lint and test the build with the `rust` feature (the tests take about 20 s and
# need `cargo`, and the registry for the `:dep rayon` cell, at run time). The tests run
# against that build rather than building the crate and evcxr again with the tests'
# dependencies (a test build unifies other features of shared crates). The notebook with
# Rust cells runs in python-test on the default kernel; with RUST=0 it runs here instead, on
# a kernelspec of the feature build, under nbclient and in JupyterLab.
RUST_KERNELSPEC := $(CURDIR)/target/rust-cells-kernelspec

rust-cells-test: $(VENV)/.test-stamp
	cargo clippy --all-targets --features rust -- -D warnings
	cargo build --profile rust-cells --features rust
	RHAI_KERNEL_TEST_BINARY=target/rust-cells/rhai-kernel cargo test --test rust_cells -- --ignored
ifeq ($(WITH_RUST),)
	rm -rf $(RUST_KERNELSPEC)
	target/rust-cells/rhai-kernel install --prefix $(RUST_KERNELSPEC)
	JUPYTER_PATH=$(RUST_KERNELSPEC)/share/jupyter RHAI_KERNEL_HISTORY=off RHAI_KERNEL_RUST_CELLS=1 \
		$(VPY) -m pytest -q -rs --timeout=900 tests/notebooks tests/clients/test_jupyterlab.py -k rust
endif

# Kernels started by the Python tests keep their history under target/, not in the user's
# Jupyter data directory.
TEST_HISTORY := $(CURDIR)/target/test-output/history.jsonl

# JupyterHub's proxy for the class test (tests/clients/test_jupyterhub.py), from npm.
HUB_PROXY := target/hub/node_modules/.bin/configurable-http-proxy
$(HUB_PROXY):
	mkdir -p target/hub
	npm install --no-audit --no-fund --prefix target/hub configurable-http-proxy@4

python-test: kernelspec $(VENV)/.test-stamp $(HUB_PROXY)
	mkdir -p $(dir $(TEST_HISTORY)) && rm -f $(TEST_HISTORY)
	$(JUPYTER_ENV) RHAI_KERNEL_HISTORY=$(TEST_HISTORY) RHAI_KERNEL_RUST_CELLS=$(if $(WITH_RUST),1,0) \
		$(VPY) -m pytest -q -rs --timeout=900 tests/conformance tests/notebooks tests/clients tests/python

# CurveZMQ needs a libzmq built with libsodium (Debian: libzmq3-dev, which .ci/run installs);
# the default build's vendored libzmq has none (see docs/hardening.md, Encryption). This links the
# system libzmq in a separate target directory and runs the encrypted round trip, raw
# (kernel_curve) and through jupyter_client (test_curve.py, on a kernelspec of that build:
# python-test's kernelspec is the default build, for which test_curve.py checks the
# refusal). RHAI_KERNEL_EXPECT_CURVE=1 makes both fail, rather than check the refusal or
# skip, when that build or pyzmq turns out to have no CURVE.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
CURVE_LINK := --config 'target.$(HOST).zmq.rustc-link-lib=["zmq"]'
CURVE_KERNELSPEC := $(CURDIR)/target/curve-kernelspec
curve-test: $(VENV)/.test-stamp
	@if pkg-config --exists libzmq 2>/dev/null; then \
		set -e; \
		RHAI_KERNEL_EXPECT_CURVE=1 CARGO_TARGET_DIR=target/curve \
		cargo test $(CURVE_LINK) --test kernel_curve; \
		CARGO_TARGET_DIR=target/curve cargo build $(CURVE_LINK); \
		rm -rf $(CURVE_KERNELSPEC); \
		target/curve/debug/rhai-kernel install --prefix $(CURVE_KERNELSPEC) >/dev/null; \
		JUPYTER_PATH=$(CURVE_KERNELSPEC)/share/jupyter RHAI_KERNEL_HISTORY=off \
		RHAI_KERNEL_EXPECT_CURVE=1 $(VPY) -m pytest -q -rs --timeout=600 tests/python/test_curve.py; \
	else \
		echo "NOT RUN: curve-test needs libzmq with CURVE (Debian: libzmq3-dev, installed by .ci/run)"; \
	fi

# The wheel: maturin and zig (from PyPI, in a venv of their own) link against glibc 2.28, so
# the wheel installs on any manylinux_2_28 system; a target directory of its own, because zig
# builds the C parts (libzmq) differently.
WHEEL_TOOLS := target/wheel-tools
$(WHEEL_TOOLS)/.stamp:
	rm -rf $(WHEEL_TOOLS)
	$(PYTHON) -m venv $(WHEEL_TOOLS)
	$(WHEEL_TOOLS)/bin/python -m pip install --quiet "maturin>=1.5,<2" ziglang
	touch $@

wheel: $(WHEEL_TOOLS)/.stamp
	rm -f target/wheels/rhai_kernel-*.whl
	PATH="$(CURDIR)/$(WHEEL_TOOLS)/bin:$$PATH" CARGO_TARGET_DIR=target/wheel \
		$(WHEEL_TOOLS)/bin/maturin build --release --zig --compatibility manylinux_2_28 \
		--out target/wheels

# The wheel as a learner installs it: a fresh venv with only jupyterlab and nbclient, no cargo
# on PATH, notebooks 00-05 under nbclient (tests/wheel).
wheel-test: wheel $(VENV)/.test-stamp $(HUB_PROXY)
	$(VPY) -m pytest -q -rs --timeout=1800 tests/wheel

test: lint rust-test python-test curve-test rust-cells-test wheel-test

bench: kernelspec $(VENV)/.test-stamp
	mkdir -p target/bench
	$(JUPYTER_ENV) $(VPY) benches/kernel_bench.py --write target/bench/kernel.md
	$(VPY) benches/runtime_bench.py --binary $(RELEASE_BIN) --write target/bench/runtime.md \
		--svg BENCHMARKS-scaling.svg
	rm -f target/bench/instructions.md
	$(VPY) benches/instructions.py --binary $(RELEASE_BIN) --write target/bench/instructions.md
	cat target/bench/kernel.md target/bench/runtime.md target/bench/instructions.md > BENCHMARKS.md

# Rhai's own test suite against the patched copy in vendor/ (vendor/README.md). It needs a
# checkout of Rhai's repository: make rhai-upstream-test RHAI_SRC=path/to/rhai
rhai-upstream-test:
	vendor/upstream-tests.sh $(RHAI_SRC)

# A release build that keeps line tables, so perf can name the functions it samples.
profile:
	cargo build --profile profiling
	$(PYTHON) benches/profile_scripts.py --binary target/profiling/rhai-kernel

clean:
	cargo clean
	rm -rf $(VENV)
