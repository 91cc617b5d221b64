"""The seeds' job in Bytewax 0.21 on the benchmark's users file, for scripts/bench.sh:
each user formatted to the 12-field row (as format_user makes it), then 1-minute gender
counts by the `ts_ms` event time. Runs the dataflow with `python -m bytewax.run` in
PROCESSES processes (default 2, a cluster on loopback), each window written by the worker that closes it, and
prints the wall time (start-up included) and the windows' count.

    python bench_bytewax.py USERS.jsonl OUT_DIR [PROCESSES]
"""
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.operators.windowing import EventClock, TumblingWindower

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def row(line):
    u = json.loads(line)
    loc = u["location"]
    street = loc["street"]
    return {
        "id": u["login"]["uuid"],
        "first_name": u["name"]["first"],
        "last_name": u["name"]["last"],
        "gender": u["gender"],
        "address": f"{street['number']} {street['name']}, {loc['city']}, {loc['state']}, {loc['country']}",
        "post_code": str(loc["postcode"]),
        "email": u["email"],
        "username": u["login"]["username"],
        "dob": u["dob"]["date"],
        "registered_date": u["registered"]["date"],
        "phone": u["phone"],
        "picture": u["picture"]["medium"],
        "ts": datetime.fromtimestamp(u["ts_ms"] / 1000, tz=timezone.utc),
    }


class _Part(StatelessSinkPartition):
    def __init__(self, path):
        self.f = open(path, "a")

    def write_batch(self, items):
        for item in items:
            self.f.write(json.dumps(item) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


class WindowFiles(DynamicSink):
    """One file of windows per worker."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def build(self, step_id, worker_index, worker_count):
        return _Part(os.path.join(self.out_dir, f"part-{worker_index}.jsonl"))


def count(acc, r):
    g = r["gender"].lower()
    acc["male"] += g == "male"
    acc["female"] += g == "female"
    acc["total"] += 1
    return acc


def merge(a, b):
    return {k: a[k] + b[k] for k in a}


def build(users, out_dir):
    flow = Dataflow("sluice-bench")
    lines = op.input("users", flow, FileSource(users))
    rows = op.map("format", lines, row)
    keyed = op.key_on("all", rows, lambda _r: "all")
    clock = EventClock(lambda r: r["ts"], wait_for_system_duration=timedelta(seconds=0))
    windower = TumblingWindower(length=timedelta(minutes=1), align_to=EPOCH)
    counted = win.fold_window(
        "genders",
        keyed,
        clock,
        windower,
        lambda: {"male": 0, "female": 0, "total": 0},
        count,
        merge,
    )
    out = op.map("shape", counted.down, lambda kv: {"window": kv[1][0], **kv[1][1]})
    op.output("windows", out, WindowFiles(out_dir))
    return flow


flow = build(os.environ.get("SLUICE_BENCH_USERS_FILE", ""), os.environ.get("SLUICE_BENCH_OUT", "."))

if __name__ == "__main__":
    users, out_dir = sys.argv[1], sys.argv[2]
    processes = sys.argv[3] if len(sys.argv) > 3 else "2"
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    started = time.time()
    env = dict(os.environ, SLUICE_BENCH_USERS_FILE=users, SLUICE_BENCH_OUT=out_dir)
    here = os.path.dirname(os.path.abspath(__file__))
    # Bytewax 0.21 runs a cluster as one process per address (-i its index).
    ports = []
    for _ in range(int(processes)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "bench_bytewax:flow", "-i", str(i), "-a", addresses],
            cwd=here,
            env=env,
        )
        for i in range(len(ports))
    ]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"bytewax process exited {p.returncode}")
    wall = time.time() - started
    n = sum(1 for f in os.listdir(out_dir) for _ in open(os.path.join(out_dir, f)))
    print(f"bytewax: {wall:.1f} s wall, {n} windows")
