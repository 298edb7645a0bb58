#!/bin/sh
# Build placement-operator as a wheel and install it, with the exact pins of constraints.txt,
# into a new virtualenv at $1.
#
# The Dockerfile's build stage runs exactly this script, and tests/packaging runs it into a
# temporary directory: the image's install steps are tested without a Docker engine.
set -eu

venv="$1"
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT

python3 -m venv "$venv"
"$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$source_dir"
"$venv/bin/python" -m pip install --quiet --constraint "$source_dir/constraints.txt" "$wheels"/placement_operator-*.whl
# A read-only root filesystem cannot take bytecode later: compile it now.
"$venv/bin/python" -m compileall -q "$venv/lib" >/dev/null
