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
#   - PySpark 4 local[*] on the same file, when it can be installed (Java 17 and
#     PyPI; in a venv under ~/.cache/sluice), and the ratio. SLUICE_BENCH_SPARK=0
#     skips it.
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

if [ "${SLUICE_BENCH_SPARK:-1}" = 1 ]; then
  echo
  echo "==> PySpark on the same file"
  venv="$HOME/.cache/sluice/pyspark-venv"
  if ! command -v java >/dev/null; then
    echo "    no Java here: PySpark skipped"
  elif [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import pyspark" 2>/dev/null \
      || { python3 -m venv "$venv" && "$venv/bin/pip" install -q pyspark; }; then
    users="$CARGO_TARGET_DIR/tmp/bench-job/users-$n.jsonl"
    spark=$("$venv/bin/python" scripts/bench_spark.py "$users" "$CARGO_TARGET_DIR/tmp/bench-job/spark-out" 2>/dev/null | tail -n 1)
    echo "    $spark"
    spark_s=$(echo "$spark" | awk '{print $2}')
    job_s=$(grep '^| the job' "$CARGO_TARGET_DIR/bench-job.txt" | awk -F'|' '$3 ~ /2/ {print $4}' | tr -d ' ')
    awk -v s="$spark_s" -v j="$job_s" 'BEGIN { printf "    the job, 2 workers: %.2f s; PySpark: %.1f s: Sluice is %.1fx faster\n", j, s, s / j }'
  else
    echo "    PySpark could not be installed: skipped"
  fi
fi
