#!/usr/bin/env bash
# README command 2: every test, from a fresh clone on a fresh machine.
# Installs what is missing (the wasm32-wasip2 target, clippy, rustfmt, OpenSSL headers
# for librdkafka), builds the plugins, checks formatting and lints, starts the test
# servers (a Kafka-protocol broker) on 127.0.0.1, runs every test, stops the servers,
# then runs the quickstart pipeline.
#
# SLUICE_TEST_KAFKA=host:port runs the Kafka tests against another broker (e.g.
# Apache Kafka from docker-compose.yml) instead of starting one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# librdkafka is built from source (rdkafka's bundled copy) with TLS: it needs
# OpenSSL's headers and pkg-config.
if ! pkg-config --exists openssl 2>/dev/null; then
  echo "==> installing libssl-dev and pkg-config (for librdkafka)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq libssl-dev pkg-config
fi

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

# One broker for every test (tests use topics and groups of their own), in a state
# folder of the test run's own, so a broker a developer started is left alone.
if [ -z "${SLUICE_TEST_KAFKA:-}" ]; then
  export SLUICE_SERVERS_DIR="${SLUICE_TEST_SERVERS_DIR:-$CARGO_TARGET_DIR/test-servers}"
  export SLUICE_KAFKA_PORT="${SLUICE_TEST_KAFKA_PORT:-19092}"
  echo "==> starting the Kafka-protocol test broker (scripts/servers.sh)"
  SLUICE_TEST_KAFKA=$(scripts/servers.sh start kafka | tail -n 1)
  export SLUICE_TEST_KAFKA
  trap 'scripts/servers.sh stop kafka || true' EXIT
fi
echo "    Kafka tests use $SLUICE_TEST_KAFKA"

echo "==> cargo test (host, plugins' native tests, integration tests in tests/)"
cargo test --workspace

echo "==> docker-compose.yml (validated offline)"
scripts/check-compose.sh

echo "==> quickstart pipeline"
cargo build --quiet -p sluice
"$CARGO_TARGET_DIR/debug/sluice" run --no-progress pipelines/quickstart.toml > "$CARGO_TARGET_DIR/quickstart-windows.jsonl"
windows=$(wc -l < "$CARGO_TARGET_DIR/quickstart-windows.jsonl")
if [ "$windows" -ne 5 ]; then
  echo "quickstart printed $windows window results, expected 5" >&2
  exit 1
fi
echo "quickstart printed $windows window results"
