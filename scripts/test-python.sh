#!/usr/bin/env bash
# The Python part of the test command: builds and installs the package from ./python into a
# fresh virtual environment, checks the stubs against the built module (mypy.stubtest),
# type-checks the package, and runs the pytest suite and the gateway example's end-to-end
# test. Installs what it needs (python3-venv from Debian when `python3 -m venv` is missing;
# maturin, pytest, mypy, httpx, uvicorn, starlette from PyPI).
#
# The native module is built with cargo's dev profile (the workspace raises the crypto
# crates' optimisation there), sharing target/ with the Rust tests; set NANU_PY_PROFILE=release
# for an optimised build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv="$root/target/py-venv"
profile="${NANU_PY_PROFILE:-dev}"

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  echo "test-python: installing python3-venv"
  apt-get update -qq
  apt-get install -y -qq python3-venv python3-pip >/dev/null
fi

# A fresh environment every run: nothing left over from an earlier build can hide a missing
# install step.
rm -rf "$venv"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "maturin>=1.9,<2" "pytest>=8" "mypy>=1.18" "httpx>=0.27" \
  "uvicorn>=0.30" "starlette>=0.40"

echo "test-python: building and installing ./python (profile $profile)"
MATURIN_PEP517_ARGS="--profile $profile" "$py" -m pip install -q ./python

# Run from outside the source tree, so that `import nanu` is the installed package (with its
# native module), never python/nanu/.
cd "$root/target"
echo "test-python: stubtest"
"$py" -m mypy.stubtest nanu
echo "test-python: mypy"
"$py" -m mypy --strict --no-incremental -p nanu
"$py" -m mypy --strict --no-incremental "$root/examples/python-gateway" \
  "$root/benches/python/bench_verify.py"
(cd "$root/python/tests" && "$py" -m mypy --no-incremental --check-untyped-defs \
  --warn-unused-ignores --cache-dir /dev/null .)

echo "test-python: pytest (package)"
"$venv/bin/pytest" -q -p no:cacheprovider "$root/python/tests"

echo "test-python: pytest (gateway example)"
"$venv/bin/pytest" -q -p no:cacheprovider "$root/examples/python-gateway/test_gateway.py"
echo "test-python: all passed"
