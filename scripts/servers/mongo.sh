# shellcheck shell=bash
# MongoDB wire: SecantusDB from PyPI (sourced by scripts/servers.sh).

# SecantusDB, a MongoDB-wire server in Python, from PyPI.
SECANTUS_VERSION=0.7.0b3


# ---------------------------------------------------------------- mongo (SecantusDB)

addr_mongo() {
    local port=${SLUICE_MONGO_PORT:-27017}
    check_port SLUICE_MONGO_PORT "$port"
    printf '127.0.0.1:%s' "$((10#$port))"
}

proc_match_mongo() { printf '%s' '*secantusd-py *'; }

# Path of secantusd-py; installs SecantusDB into a venv of its own on first use.
secantus_bin() {
    local venv bin
    venv="$(bin_dir)/secantus-$SECANTUS_VERSION"
    bin="$venv/bin/secantusd-py"
    if [[ -x $bin ]]; then
        printf '%s' "$bin"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 is needed for the MongoDB-wire server"
    msg "installing SecantusDB==$SECANTUS_VERSION from PyPI into $venv"
    # A venv records its own path, so it is built in place; the server script is
    # written last, so a half-done install is simply redone.
    python3 -m venv "$venv" >&2 || die "cannot create a Python venv (install python3-venv)"
    "$venv/bin/pip" install --quiet "SecantusDB==$SECANTUS_VERSION" >&2 ||
        die "pip could not install SecantusDB==$SECANTUS_VERSION"
    printf '%s' "$bin"
}

start_mongo() {
    local bin addr data
    bin=$(secantus_bin)
    addr=$(addr_mongo)
    data="$(run_dir)/mongo-data"
    mkdir -p "$data"
    launch mongo "$bin" --host 127.0.0.1 --port "${addr##*:}" --storage-path "$data"
}
