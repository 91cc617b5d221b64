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
cassandra_bin() { repo_server_bin SLUICE_CQL_SERVER_BIN sluice-cql-test-server "CQL test server"; }

start_cassandra() {
    local bin addr
    bin=$(cassandra_bin)
    addr=$(addr_cassandra)
    launch cassandra "$bin" --host 127.0.0.1 --port "${addr##*:}" --data "$(run_dir)/cassandra-data.ron"
}
