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
registry_bin() {
    if [[ -n ${SLUICE_REGISTRY_SERVER_BIN:-} ]]; then
        [[ -x $SLUICE_REGISTRY_SERVER_BIN ]] || die "SLUICE_REGISTRY_SERVER_BIN=$SLUICE_REGISTRY_SERVER_BIN is not an executable"
        printf '%s' "$SLUICE_REGISTRY_SERVER_BIN"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to build the test registry"
    local repo target
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    target=$(cd "$repo" && source scripts/env.sh && printf '%s' "$CARGO_TARGET_DIR")
    msg "building the test registry (cargo build --release -p sluice-registry-test-server)"
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --quiet --release -p sluice-registry-test-server >&2) ||
        die "could not build the test registry"
    printf '%s' "$target/release/sluice-registry-test-server"
}

start_registry() {
    local bin addr
    bin=$(registry_bin)
    addr=$(addr_registry)
    launch registry "$bin" --host 127.0.0.1 --port "${addr##*:}" --data "$(run_dir)/registry.json"
}
