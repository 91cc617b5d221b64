#!/usr/bin/env bash
# README command 1: build the plugins and the host, then run the quickstart pipeline
# (offline generator -> format_user -> gender_window; users to a JSON-lines file,
# 1-minute window counts to stdout). No servers, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/build-cache.sh
scripts/build-plugins.sh
echo "==> building sluice"
cargo build --quiet --release -p sluice
echo "==> sluice run pipelines/quickstart.toml"
exec "$CARGO_TARGET_DIR/release/sluice" run pipelines/quickstart.toml "$@"
