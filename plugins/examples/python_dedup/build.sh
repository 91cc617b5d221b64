#!/usr/bin/env bash
# Build the Python example into a Sluice stateful component with componentize-py
# (PyPI, pinned, installed once into a venv of its own): dist/python_dedup.wasm.
#   plugins/examples/python_dedup/build.sh
# The bindings componentize-py generates from the WIT (wit_world/, for an editor's
# type hints) are made in a scratch folder, not kept here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
version=0.25.1
venv="${SLUICE_COMPONENTIZE_PY_VENV:-$HOME/.cache/sluice/componentize-py-$version}"
if ! [ -x "$venv/bin/componentize-py" ]; then
  echo "==> installing componentize-py==$version into $venv"
  python3 -m venv "$venv" || { echo "cannot create a Python venv (install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet "componentize-py==$version"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
mkdir -p "$here/dist"
(
  cd "$work"
  "$venv/bin/componentize-py" -d "$repo/wit" -w stateful bindings .
  "$venv/bin/componentize-py" -d "$repo/wit" -w stateful componentize app -o "$here/dist/python_dedup.wasm" >/dev/null
)
echo "    $(wc -c < "$here/dist/python_dedup.wasm") bytes  plugins/examples/python_dedup/dist/python_dedup.wasm"
