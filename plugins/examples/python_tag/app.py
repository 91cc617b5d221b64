"""python_tag: a Sluice transform written in Python. Each record's value, a JSON
object, comes back with one more field, "tagged_by": "python_tag"; anything else is
an error for that record (a dead letter, with the reason).

Built into a component by build.sh (componentize-py); the host calls `init` once per
instance and `process` once per batch, as for a Rust plugin."""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import types


def tag(value: bytes) -> bytes:
    """One value -> the value to emit; raises ValueError with the reason."""
    try:
        obj = json.loads(value)
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    obj["tagged_by"] = "python_tag"
    return json.dumps(obj, separators=(",", ":")).encode()


class Transformer(exports.Transformer):
    def init(self, config: str) -> None:
        if config.strip() not in ("", "{}"):
            raise Err(f"python_tag takes no configuration, got {config}")

    def process(self, batch):
        out = []
        for r in batch:
            try:
                out.append(Ok([types.Record(r.key, tag(r.value), r.timestamp_ms, r.headers)]))
            except ValueError as e:
                out.append(Err(str(e)))
        return out
