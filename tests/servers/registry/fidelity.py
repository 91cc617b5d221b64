"""The test registry against Confluent's own Python client (confluent-kafka): what a
Kafka shop's other producers and consumers do with a registry, done through ours.

    python fidelity.py http://127.0.0.1:8081 SUFFIX

Avro: a value serialized with AvroSerializer (which registers the schema) and read
back with AvroDeserializer (which fetches it by id); the schema evolved by a field
with a default (old and new readers both read both); a field added without a default
refused as incompatible (409); the compatibility level set and read. JSON Schema: a
value through JSONSerializer and JSONDeserializer. Prints "ok" when all of it holds;
any difference raises (exit 1)."""

import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, suffix = sys.argv[1], sys.argv[2]
client = SchemaRegistryClient({"url": url})
topic = f"users-{suffix}"
subject = f"{topic}-value"
ctx = SerializationContext(topic, MessageField.VALUE)

V1 = """{"type": "record", "name": "User", "fields": [
  {"name": "id", "type": "string"},
  {"name": "age", "type": ["null", "int"], "default": null}]}"""
V2 = """{"type": "record", "name": "User", "fields": [
  {"name": "id", "type": "string"},
  {"name": "age", "type": ["null", "int"], "default": null},
  {"name": "nat", "type": "string", "default": "??"}]}"""
V3 = """{"type": "record", "name": "User", "fields": [
  {"name": "id", "type": "string"},
  {"name": "email", "type": "string"}]}"""

# v1: registered by the serializer, framed as 0x00 + id + Avro.
v1_bytes = AvroSerializer(client, V1)({"id": "a", "age": 7}, ctx)
assert v1_bytes[0] == 0, v1_bytes[:5]
v1_id = int.from_bytes(v1_bytes[1:5], "big")
assert client.get_schema(v1_id).schema_type == "AVRO"
assert AvroDeserializer(client)(v1_bytes, ctx) == {"id": "a", "age": 7}

# v2: a field added with a default is BACKWARD compatible.
assert client.test_compatibility(subject, Schema(V2, "AVRO")) is True
v2_bytes = AvroSerializer(client, V2)({"id": "b", "age": None, "nat": "FR"}, ctx)
v2_id = int.from_bytes(v2_bytes[1:5], "big")
assert v2_id != v1_id
assert client.get_versions(subject) == [1, 2]
latest = client.get_latest_version(subject)
assert (latest.version, latest.schema_id) == (2, v2_id), latest
# Old and new readers, old and new data.
assert AvroDeserializer(client, V1)(v2_bytes, ctx) == {"id": "b", "age": None}
assert AvroDeserializer(client, V2)(v1_bytes, ctx) == {"id": "a", "age": 7, "nat": "??"}
# The same schema again: the same id, no new version.
assert client.register_schema(subject, Schema(V2, "AVRO")) == v2_id
assert client.lookup_schema(subject, Schema(V2, "AVRO")).version == 2

# v3: a field without a default cannot read older data: refused.
assert client.test_compatibility(subject, Schema(V3, "AVRO")) is False
try:
    client.register_schema(subject, Schema(V3, "AVRO"))
    raise AssertionError("an incompatible schema was registered")
except SchemaRegistryError as e:
    assert e.http_status_code == 409, e
# With compatibility NONE for the subject, it goes in.
client.set_compatibility(subject, "NONE")
assert client.get_compatibility(subject) == "NONE"
client.register_schema(subject, Schema(V3, "AVRO"))
assert client.get_versions(subject) == [1, 2, 3]

# An unknown id is the registry's 404.
try:
    client.get_schema(987654)
    raise AssertionError("an unknown id was found")
except SchemaRegistryError as e:
    assert e.http_status_code == 404 and e.error_code == 40403, e

# JSON Schema.
JS = """{"type": "object", "properties": {"id": {"type": "string"}, "age": {"type": "integer"}},
  "required": ["id"]}"""
jctx = SerializationContext(f"json-{suffix}", MessageField.VALUE)
j_bytes = JSONSerializer(JS, client)({"id": "c", "age": 3}, jctx)
assert j_bytes[0] == 0
j_id = int.from_bytes(j_bytes[1:5], "big")
assert client.get_schema(j_id).schema_type == "JSON"
assert JSONDeserializer(JS, schema_registry_client=client)(j_bytes, jctx) == {"id": "c", "age": 3}

print("ok")
