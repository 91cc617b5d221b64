# shellcheck shell=bash
# The servers' lifecycle, sourced by scripts/servers.sh: state files, processes
# (tracked by PID, never by name), and the generic start, stop and status every
# server shares.

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

# Path of a test server built from this repository (tests/servers/*): the one the
# environment variable VAR names, else built with cargo (a no-op when it is up to
# date). Usage: repo_server_bin VAR PACKAGE "what, for messages".
repo_server_bin() {
    local var=$1 package=$2 what=$3
    if [[ -n ${!var:-} ]]; then
        [[ -x ${!var} ]] || die "$var=${!var} is not an executable"
        printf '%s' "${!var}"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to build the $what"
    local repo target
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    target=$(cd "$repo" && source scripts/env.sh && printf '%s' "$CARGO_TARGET_DIR")
    msg "building the $what (cargo build --release -p $package)"
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --quiet --release -p "$package" >&2) ||
        die "could not build the $what"
    printf '%s' "$target/release/$package"
}
