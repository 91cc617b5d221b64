#!/usr/bin/env bash
# Issue 17's benchmark table, in one run (printed, never asserted):
#   - the seeds' job on 500,000 users (file -> format_user -> 1-minute gender_window
#     -> null + file), and file -> format_user -> null and file -> null, at workers 1
#     and 2: wall time, records/s, CPU, peak RSS; the scaling;
#   - format_user per core in the pipeline's stage vs the same code natively;
#   - latency (source read -> sink write) p50/p99 at 1,000 records/s and full load;
#   - Kafka -> format_user -> null against a bare consumer on the same topic (starts
#     the local broker with scripts/servers.sh unless SLUICE_TEST_KAFKA is set);
#   - the PostgreSQL sink against a bare tokio-postgres writer (issue 18; starts the
#     local PostgreSQL unless SLUICE_TEST_POSTGRES is set);
#   - the HTTP ingest source: requests/s, records/s, p50/p99 for 1/16/64 clients and
#     1/100 records a request, ack durable and accepted, beside a bare hyper server;
#   - keyed state (issue 26): dedup against format_user alone on the same file, the
#     checkpoint and the restart at 1,000,000 keys;
#   - the anchors (issue 28) on the same file, when they can be installed (Java 17
#     and PyPI; each in a venv under ~/.cache/sluice): PySpark 4 local[*], Flink SQL
#     through PyFlink 2.3 (parallelism 2; its in-job time beside its wall time) and
#     Bytewax 0.21 (2 processes); each one's window count checked against Sluice's,
#     and the ratios, each to the job timed again right before that anchor (the same
#     minutes). SLUICE_BENCH_ANCHORS=0 skips them, SLUICE_BENCH_SPARK=0 PySpark.
# SLUICE_BENCH_USERS (default 500000) and SLUICE_BENCH_RUNS (default 3) size it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/build-cache.sh
scripts/build-plugins.sh >/dev/null
n=${SLUICE_BENCH_USERS:-500000}

echo "==> the job, scaling, format_user per core, latency (cargo bench --bench job)"
cargo bench --quiet -p sluice --bench job 2>/dev/null | tee "$CARGO_TARGET_DIR/bench-job.txt"

echo
echo "==> Kafka (cargo bench --bench kafka)"
cargo bench --quiet -p sluice --bench kafka 2>/dev/null

echo
echo "==> Kafka with a Schema Registry: Avro against JSON (cargo bench --bench registry)"
cargo bench --quiet -p sluice --bench registry 2>/dev/null

echo
echo "==> PostgreSQL sink vs bare tokio-postgres (cargo bench --bench postgres)"
cargo bench --quiet -p sluice --bench postgres 2>/dev/null

echo
echo "==> HTTP ingest vs a bare hyper server (cargo bench --bench ingest)"
cargo bench --quiet -p sluice --bench ingest 2>/dev/null

echo
echo "==> keyed state: dedup against format_user alone; 1M keys' checkpoint (cargo bench --bench keyed)"
cargo bench --quiet -p sluice --bench keyed 2>/dev/null

# The anchors: the same job in PySpark, Flink SQL (PyFlink) and Bytewax on the same
# file, each in a venv of its own under the cache folder (installed from PyPI on first
# use), their window counts held to Sluice's, and the ratios to Sluice's wall time at
# 2 workers. SLUICE_BENCH_ANCHORS=0 skips them (SLUICE_BENCH_SPARK=0: PySpark alone).
if [ "${SLUICE_BENCH_ANCHORS:-1}" = 1 ]; then
  users="$CARGO_TARGET_DIR/tmp/bench-job/users-$n.jsonl"
  job_s=$(grep '^| the job' "$CARGO_TARGET_DIR/bench-job.txt" | awk -F'|' '$3 ~ /2/ {print $4}' | tr -d ' ')
  job_windows=$(awk '/^the job.s windows:/ {print $4}' "$CARGO_TARGET_DIR/bench-job.txt")
  # The job again, right before each anchor (the same pipeline as the bench's, workers
  # 2, the release binary; median wall of 3): this machine's speed drifts ~2x between
  # hours and by 10-20% within minutes, and a ratio means something only for two runs
  # in the same minutes, not for one taken a quarter of an hour before the other.
  job_now() {
    local dir; dir=$(mktemp -d)
    cat > "$dir/p.toml" <<TOML
[pipeline]
workers = 2
[source]
type = "file"
path = "$users"
event_time = { field = "ts_ms", format = "epoch_ms" }
[[transforms]]
plugin = "$PWD/plugins/dist/format_user.wasm"
[window]
plugin = "$PWD/plugins/dist/gender_window.wasm"
size = "1m"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
[[sinks]]
type = "null"
TOML
    local i start end walls=""
    for i in 1 2 3; do
      rm -rf "$dir/.sluice" "$dir/windows.jsonl"
      start=$(date +%s.%N)
      "$CARGO_TARGET_DIR/release/sluice" run --no-progress "$dir/p.toml" >/dev/null 2>&1 || true
      end=$(date +%s.%N)
      walls="$walls $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')"
    done
    rm -rf "$dir"
    echo $walls | tr ' ' '\n' | sort -n | sed -n 2p
  }
  # anchor NAME PACKAGE MODULE SCRIPT [ARGS...]: install, run, check, print the ratio.
  anchor() {
    local name=$1 package=$2 module=$3 script=$4 venv="$HOME/.cache/sluice/$1-venv" line
    shift 4
    echo
    echo "==> $name on the same file"
    if ! command -v java >/dev/null && [ "$name" != bytewax ]; then
      echo "    no Java here: $name skipped"; return
    fi
    if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $module" 2>/dev/null; } \
        && ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q "$package"; }; then
      echo "    $name could not be installed: skipped"; return
    fi
    local j; j=$(job_now)
    if ! line=$("$venv/bin/python" "scripts/$script" "$users" "$CARGO_TARGET_DIR/tmp/bench-job/$name-out" "$@" 2>/dev/null | tail -n 1); then
      echo "    $name failed: skipped"; return
    fi
    echo "    $line"
    echo "$line" | awk -v j="$j" -v jb="$job_s" -v jw="$job_windows" -v name="$name" '{
      wall = $2; windows = $(NF - 1)
      if (windows != jw) { printf "    WINDOWS DIFFER: %s counted %s, Sluice %s\n", name, windows, jw; exit }
      printf "    the same %s windows; the job, 2 workers, just before: %.2f s (%.2f s in the bench above); %s: %.1f s wall: Sluice is %.1fx faster", windows, j, jb, name, wall, wall / j
      for (i = 1; i < NF; i++) if ($(i + 1) == "s" && $(i + 2) == "job,") printf " (%.1fx its in-job %.1f s)", $i / j, $i
      printf "\n"
    }'
  }
  if [ "${SLUICE_BENCH_SPARK:-1}" = 1 ]; then
    anchor pyspark pyspark pyspark bench_spark.py
  fi
  anchor flink apache-flink==2.3.0 pyflink bench_flink.py 2
  anchor bytewax bytewax==0.21.1 bytewax bench_bytewax.py 2
fi
