#!/usr/bin/env bash
# README command 2: every test, from a fresh clone on a fresh machine.
# Installs what is missing (the wasm32-wasip2 target, clippy, rustfmt, OpenSSL headers
# for librdkafka, Chromium for the status page's test), builds the plugins, checks formatting and lints, starts the test
# servers (a Kafka-protocol broker, a CQL server, a MongoDB-wire server, PostgreSQL) on 127.0.0.1,
# runs every test, stops the servers, validates docker-compose.yml, then runs the
# quickstart pipeline.
#
# SLUICE_TEST_KAFKA=host:port, SLUICE_TEST_CASSANDRA=host:port,
# SLUICE_TEST_MONGO=mongodb://host:port and SLUICE_TEST_POSTGRES=postgres://... run the
# tests against other servers (e.g. the genuine ones from docker-compose.yml) instead
# of starting them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/build-cache.sh

# Debian packages the tests need, installed when missing (as root, or with sudo;
# APT_OPTS adds apt-get options).
apt_install() {
  local why=$1; shift
  echo "==> installing $* ($why)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086 # APT_OPTS is a list of options
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ${APT_OPTS:-} "$@"
}

# librdkafka is built from source (rdkafka's bundled copy) with TLS: it needs
# OpenSSL's headers and pkg-config.
if ! pkg-config --exists openssl 2>/dev/null; then
  apt_install "for librdkafka" libssl-dev pkg-config
fi

# The status page is tested in headless Chromium (Debian's package).
if [ -z "${SLUICE_TEST_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
  apt_install "the status page's browser test" chromium
fi

# The PostgreSQL connectors are tested against PostgreSQL itself (Debian's package;
# its own cluster is made in the test run's state folder, not the system's).
if [ -z "${SLUICE_TEST_POSTGRES:-}" ] && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  APT_OPTS=--no-install-recommends apt_install "the PostgreSQL connectors' tests" postgresql
fi

# The HTTP ingest source is tested with the seeds' own client, Python `requests`.
if ! python3 -c 'import requests' 2>/dev/null; then
  apt_install "the ingest source's client test" python3-requests
fi

for component in clippy rustfmt; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "==> installing $component"
    rustup component add "$component"
  fi
done

scripts/build-plugins.sh
# Confluent's own Python client (confluent-kafka, fastavro, jsonschema from PyPI, in a
# venv of its own): the test registry's answers are checked against it.
confluent_venv="${SLUICE_CONFLUENT_VENV:-$HOME/.cache/sluice/confluent-venv}"
if ! "$confluent_venv/bin/python" -c "import confluent_kafka.schema_registry.avro, fastavro, jsonschema" 2>/dev/null; then
  echo "==> installing confluent-kafka into $confluent_venv"
  python3 -m venv "$confluent_venv"
  "$confluent_venv/bin/pip" install --quiet "confluent-kafka[avro,json,schemaregistry]==2.16.2" fastavro jsonschema
fi
export SLUICE_CONFLUENT_PYTHON="$confluent_venv/bin/python"

# The Python example plugins (componentize-py from PyPI, in a venv of its own).
plugins/examples/python_tag/build.sh
plugins/examples/python_dedup/build.sh

echo "==> module layers (docs/architecture.md) and documentation links"
python3 scripts/check-layers.py
python3 scripts/check-links.py

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
# The plugins' component glue only exists on wasm32: lint it there too.
cargo clippy --quiet --target wasm32-wasip2 \
  -p sluice-plugin-sdk -p format_user -p gender_window -p misbehave -- -D warnings

# One broker, one CQL server and one MongoDB-wire server for every test (tests use
# topics, groups, keyspaces and databases of their own), in a state folder of the
# test run's own, so servers a developer started are left alone. A test that stops a
# store mid-stream starts one of its own.
export SLUICE_SERVERS_DIR="${SLUICE_TEST_SERVERS_DIR:-$CARGO_TARGET_DIR/test-servers}"
export SLUICE_KAFKA_PORT="${SLUICE_TEST_KAFKA_PORT:-19092}"
export SLUICE_CASSANDRA_PORT="${SLUICE_TEST_CASSANDRA_PORT:-19042}"
export SLUICE_MONGO_PORT="${SLUICE_TEST_MONGO_PORT:-27018}"
export SLUICE_POSTGRES_PORT="${SLUICE_TEST_POSTGRES_PORT:-15432}"
echo "==> building the CQL and registry test servers"
cargo build --quiet --release -p sluice-cql-test-server -p sluice-registry-test-server
export SLUICE_CQL_SERVER_BIN="$CARGO_TARGET_DIR/release/sluice-cql-test-server"
export SLUICE_REGISTRY_SERVER_BIN="$CARGO_TARGET_DIR/release/sluice-registry-test-server"
export SLUICE_REGISTRY_PORT="${SLUICE_TEST_REGISTRY_PORT:-18081}"
# Last run's servers (if a run was killed) and data go first.
scripts/servers.sh stop >/dev/null 2>&1 || true
rm -rf "$SLUICE_SERVERS_DIR/run"
started=()
stop_servers() { ((${#started[@]})) && scripts/servers.sh stop "${started[@]}" || true; }
trap stop_servers EXIT
for store in KAFKA:kafka CASSANDRA:cassandra MONGO:mongo POSTGRES:postgres REGISTRY:registry; do
  var=SLUICE_TEST_${store%%:*} name=${store##*:}
  if [ -z "${!var:-}" ]; then
    echo "==> starting the $name test server (scripts/servers.sh)"
    addr=$(scripts/servers.sh start "$name" | tail -n 1)
    started+=("$name")
    # Not exported as SLUICE_TEST_*: the tests find these through servers.sh (the
    # same state folder and ports), and know they may start servers of their own.
    echo "    $name tests use $addr"
  else
    echo "    $name tests use ${!var}"
  fi
done

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
