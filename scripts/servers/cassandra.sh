# shellcheck shell=bash
# CQL: the CQL test server (tests/servers/cql), sourced by scripts/servers.sh.

# ---------------------------------------------------------------- cassandra (CQL test server)

addr_cassandra() {
    local port=${SLUICE_CASSANDRA_PORT:-9042}
    check_port SLUICE_CASSANDRA_PORT "$port"
    printf '127.0.0.1:%s' "$((10#$port))"
}

proc_match_cassandra() { printf '%s' '*sluice-cql-test-server *'; }

# Path of the CQL test server: SLUICE_CQL_SERVER_BIN, else built from the
# repository with cargo (a no-op when it is up to date).
cassandra_bin() {
    if [[ -n ${SLUICE_CQL_SERVER_BIN:-} ]]; then
        [[ -x $SLUICE_CQL_SERVER_BIN ]] || die "SLUICE_CQL_SERVER_BIN=$SLUICE_CQL_SERVER_BIN is not an executable"
        printf '%s' "$SLUICE_CQL_SERVER_BIN"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to build the CQL test server"
    local repo target
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    target=$(cd "$repo" && source scripts/env.sh && printf '%s' "$CARGO_TARGET_DIR")
    msg "building the CQL test server (cargo build --release -p sluice-cql-test-server)"
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --quiet --release -p sluice-cql-test-server >&2) ||
        die "could not build the CQL test server"
    printf '%s' "$target/release/sluice-cql-test-server"
}

start_cassandra() {
    local bin addr
    bin=$(cassandra_bin)
    addr=$(addr_cassandra)
    launch cassandra "$bin" --host 127.0.0.1 --port "${addr##*:}" --data "$(run_dir)/cassandra-data.ron"
}
