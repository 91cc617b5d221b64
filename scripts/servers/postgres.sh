# shellcheck shell=bash
# PostgreSQL: Debian's, its cluster in the state folder (sourced by scripts/servers.sh).

# ---------------------------------------------------------------- postgres (PostgreSQL)

addr_postgres() {
    local port=${SLUICE_POSTGRES_PORT:-5432}
    check_port SLUICE_POSTGRES_PORT "$port"
    printf '127.0.0.1:%s' "$((10#$port))"
}

proc_match_postgres() { printf '%s' '*postgres -D *'; }
stop_signal_postgres() { printf 'INT'; }

# The folder of PostgreSQL's server binaries (Debian keeps them off PATH).
postgres_bin_dir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/postgres && -x $d/initdb ]] && { printf '%s' "$d"; return 0; }
    done
    d=$(command -v postgres 2>/dev/null) && [[ -x $(dirname "$d")/initdb ]] &&
        { dirname "$d"; return 0; }
    die "PostgreSQL is not installed: apt-get install postgresql (the tests' script installs it)"
}

# Where the cluster lives. PostgreSQL refuses to run as root: then it runs as the
# postgres user, which cannot enter root's home, so the data goes to /var/tmp (one
# folder per state folder).
postgres_data_dir() {
    if [[ -n ${SLUICE_POSTGRES_DATA:-} ]]; then
        printf '%s' "$SLUICE_POSTGRES_DATA"
    elif (($(id -u) == 0)); then
        printf '/var/tmp/sluice-postgres/%s' "$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
    else
        printf '%s/postgres-data' "$(run_dir)"
    fi
}

start_postgres() {
    local bin data addr as=()
    bin=$(postgres_bin_dir)
    data=$(postgres_data_dir)
    addr=$(addr_postgres)
    if (($(id -u) == 0)); then
        id postgres >/dev/null 2>&1 || die "running as root, PostgreSQL needs a postgres user (Debian's postgresql package makes it)"
        as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    fi
    if [[ ! -s $data/PG_VERSION ]]; then
        msg "making a PostgreSQL cluster in $data (initdb)"
        rm -rf "$data"
        mkdir -p "$data"
        chmod 700 "$data"
        local pwfile=$data.pw
        printf 'sluice\n' >"$pwfile"
        if ((${#as[@]})); then chown postgres:postgres "$data" "$pwfile"; fi
        "${as[@]}" "$bin/initdb" -D "$data" -U sluice --pwfile="$pwfile" \
            --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 \
            >"$(log_file postgres).initdb" 2>&1 ||
            { rm -f "$pwfile"; die "initdb failed; see $(log_file postgres).initdb"; }
        rm -f "$pwfile"
        # The database the connection string names is made once it answers.
        touch "$data.needs-db"
    fi
    # Listens on 127.0.0.1 only, TCP alone (no Unix socket: /run/postgresql may not
    # be ours, and a socket path under a deep state folder can pass the 107-byte limit).
    launch postgres "${as[@]}" "$bin/postgres" -D "$data" -h 127.0.0.1 -p "${addr##*:}" -k '' \
        -c fsync=on -c max_connections=200
}

# After the first start: the database `sluice` (initdb makes only postgres).
ready_postgres() {
    local data bin
    data=$(postgres_data_dir)
    [[ -f $data.needs-db ]] || return 0
    bin=$(postgres_bin_dir)
    local addr
    addr=$(addr_postgres)
    PGPASSWORD=sluice "$bin/psql" -q -h 127.0.0.1 -p "${addr##*:}" -U sluice -d postgres \
        -c 'CREATE DATABASE sluice' >&2 || die "could not create the database sluice"
    rm -f "$data.needs-db"
}
