#!/usr/bin/env bash
# README command 2: every test, from a fresh clone on a fresh machine.
# Installs what is missing (the wasm32-wasip2 target, clippy, rustfmt), builds the
# plugins, checks formatting and lints, runs every test, then the quickstart pipeline.
# The tests start the servers they need themselves, on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

for component in clippy rustfmt; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "==> installing $component"
    rustup component add "$component"
  fi
done

scripts/build-plugins.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
# The plugins' component glue only exists on wasm32: lint it there too.
cargo clippy --quiet --target wasm32-wasip2 \
  -p sluice-plugin-sdk -p format_user -p gender_window -p misbehave -- -D warnings

echo "==> cargo test (host, plugins' native tests, integration tests in tests/)"
cargo test --workspace

echo "==> quickstart pipeline"
cargo build --quiet -p sluice
"$CARGO_TARGET_DIR/debug/sluice" run --no-progress pipelines/quickstart.toml > "$CARGO_TARGET_DIR/quickstart-windows.jsonl"
windows=$(wc -l < "$CARGO_TARGET_DIR/quickstart-windows.jsonl")
if [ "$windows" -ne 5 ]; then
  echo "quickstart printed $windows window results, expected 5" >&2
  exit 1
fi
echo "quickstart printed $windows window results"
