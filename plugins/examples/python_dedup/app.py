"""python_dedup: a Sluice stateful plugin written in Python. A record passes unless a
record with the same key passed within `within_ms` of event time before (or after) it
(config `{ within_ms = 600000 }`; without it, a key passes once, ever). The state of
a key, which the host keeps, checkpoints and moves with its partition, is the event
time of the record that passed: 8 bytes little-endian, state version 1. Records
without a key pass.

Built into a component by build.sh (componentize-py, world `stateful`); the host calls
`init` once per instance and `process` once per batch, with each key's state."""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.exports.stateful_transformer import KeyState, Processed
from wit_world.imports import types

VERSION = 1
within_ms = None


def is_repeat(seen_ms, at_ms):
    """Whether a record at `at_ms` repeats the one that passed at `seen_ms`."""
    if seen_ms is None:
        return False
    return within_ms is None or abs(at_ms - seen_ms) < within_ms


class StatefulTransformer(exports.StatefulTransformer):
    def init(self, config: str) -> None:
        global within_ms
        try:
            table = json.loads(config or "{}")
        except ValueError as e:
            raise Err(f"python_dedup: config is not JSON: {e}")
        unknown = set(table) - {"within_ms"}
        if unknown:
            raise Err(f"python_dedup: unknown config key(s) {sorted(unknown)}; it takes within_ms")
        if "within_ms" in table:
            value = table["within_ms"]
            if not isinstance(value, int) or value <= 0:
                raise Err("python_dedup: within_ms must be a whole number of milliseconds, more than 0")
            within_ms = value

    def process(self, batch, states):
        # Each key's state as it stands, record after record.
        current = {}
        for s in states:
            if s.state is None:
                current[s.key] = None
            elif s.state.version == VERSION and len(s.state.data) == 8:
                current[s.key] = int.from_bytes(s.state.data, "little", signed=True)
            else:
                current[s.key] = ("unreadable", s.state.version)
        changed = set()
        outcomes = []
        for r in batch:
            if r.key is None:
                outcomes.append(Ok([r]))
                continue
            seen = current.get(r.key)
            if isinstance(seen, tuple):
                outcomes.append(Err(f"python_dedup: cannot read state version {seen[1]}"))
                continue
            if is_repeat(seen, r.timestamp_ms):
                outcomes.append(Ok([]))
                continue
            current[r.key] = r.timestamp_ms
            changed.add(r.key)
            outcomes.append(Ok([r]))
        updates = [
            KeyState(key, types.Accumulator(VERSION, current[key].to_bytes(8, "little", signed=True)))
            for key in changed
        ]
        return Processed(outcomes, updates)
