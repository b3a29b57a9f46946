#!/usr/bin/env bash
# Runs Rhai's own test suite against the patched copy in vendor/rhai-1.27.0, with the
# features this kernel builds Rhai with, so that every patch of the series is checked by
# the tests its upstream authors wrote.
#
#   vendor/upstream-tests.sh RHAI_SRC
#
# RHAI_SRC is a checkout of Rhai's repository (https://github.com/rhaiscript/rhai) whose
# `tests/` match this version. The published crate has no tests, and the test run needs
# no network beyond the crate registry, so the checkout is given, not downloaded.
# Prints the summary of every test binary and exits non-zero if any test fails.
set -euo pipefail

src=${1:?usage: vendor/upstream-tests.sh RHAI_SRC, a checkout of the Rhai repository}
[ -d "$src/tests" ] && [ -d "$src/scripts" ] || { echo "$src has no tests/ and scripts/" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -r "$here/rhai-1.27.0/." "$work/"
cp -r "$src/tests" "$src/scripts" "$work/"
# The published manifest lists no tests; Rhai's repository finds them by directory. Tests
# that need a feature this kernel does not use (the bytecode VM) stay out, as there.
sed -i 's/^autotests = false/autotests = true/' "$work/Cargo.toml"
rm -rf "$work/tests/grain" "$work/tests/mod.rs"

features=$(sed -n 's/^rhai = {.*features = \[\(.*\)\].*/\1/p' "$here/../Cargo.toml" | tr -d '" ')
cd "$work"
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/../target/rhai-upstream} \
    cargo test --features "$features" --tests --no-fail-fast 2>&1 |
    tee "$work/log" | grep -E '^(test result|     Running|failures:|    [a-z_:]+$)' || true
! grep -q '^test result: FAILED' "$work/log" && grep -q '^test result: ok' "$work/log"
