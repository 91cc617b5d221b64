"""A Kafka shop's other producers and consumers, with Confluent's own Python client
(confluent-kafka's Producer/Consumer and its registry serializers): what Sluice must
read and what must read Sluice.

    python clients.py produce REGISTRY BROKER TOPIC FORMAT SCHEMA_FILE USERS_FILE
    python clients.py consume REGISTRY BROKER TOPIC FORMAT COUNT [READER_SCHEMA_FILE]

FORMAT is avro or json_schema. `produce` serializes each JSON line of USERS_FILE with
the schema (the serializer registers it under TOPIC-value) and prints the schema id.
`consume` reads COUNT values from the start of every partition (assigned, no group),
deserializes them (Avro: with the writer's schema from the registry, or as
READER_SCHEMA_FILE reads them) and prints each as a JSON line."""

import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def produce(registry, broker, topic, fmt, schema_file, users_file):
    client = SchemaRegistryClient({"url": registry})
    schema = open(schema_file).read()
    if fmt == "avro":
        serialize = AvroSerializer(client, schema)
    else:
        serialize = JSONSerializer(schema, client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": broker, "enable.idempotence": True})
    schema_id = None
    for line in open(users_file):
        user = json.loads(line)
        value = serialize(user, ctx)
        schema_id = int.from_bytes(value[1:5], "big")
        producer.produce(topic, key=user["id"].encode(), value=value)
        producer.poll(0)
    left = producer.flush(30)
    assert left == 0, f"{left} message(s) not delivered"
    print(schema_id)


def consume(registry, broker, topic, fmt, count, reader_file=None):
    client = SchemaRegistryClient({"url": registry})
    if fmt == "avro":
        reader = open(reader_file).read() if reader_file else None
        deserialize = AvroDeserializer(client, reader)
    else:
        deserialize = JSONDeserializer(None, schema_registry_client=client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "unused",
                         "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])  # 0: the start
    got = 0
    idle = 0
    while got < count and idle < 60:
        message = consumer.poll(1.0)
        if message is None:
            idle += 1
            continue
        if message.error():
            raise RuntimeError(message.error())
        idle = 0
        value = deserialize(message.value(), ctx)
        print(json.dumps(value, default=str, sort_keys=True))
        got += 1
    consumer.close()
    assert got == count, f"read {got} of {count} values"


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "produce":
        produce(*args)
    elif command == "consume":
        consume(args[0], args[1], args[2], args[3], int(args[4]), *args[5:])
    else:
        sys.exit(f"unknown command {command}")
