# shellcheck shell=bash
# Schema Registry: the Confluent-compatible test registry (tests/servers/registry),
# sourced by scripts/servers.sh.

# ---------------------------------------------------------------- registry

addr_registry() {
    local port=${SLUICE_REGISTRY_PORT:-8081}
    check_port SLUICE_REGISTRY_PORT "$port"
    printf '127.0.0.1:%s' "$((10#$port))"
}

proc_match_registry() { printf '%s' '*sluice-registry-test-server *'; }

# Path of the registry: SLUICE_REGISTRY_SERVER_BIN, else built from the repository
# with cargo (a no-op when it is up to date).
registry_bin() { repo_server_bin SLUICE_REGISTRY_SERVER_BIN sluice-registry-test-server "test registry"; }

start_registry() {
    local bin addr
    bin=$(registry_bin)
    addr=$(addr_registry)
    launch registry "$bin" --host 127.0.0.1 --port "${addr##*:}" --data "$(run_dir)/registry.json"
}
