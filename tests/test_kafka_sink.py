"""WriteToKafka against the real broker: keys, headers, JSON and Avro values, dead letters, kcat.

The broker comes from the session ``kafka_broker`` fixture; each test writes to its own topics.
"""
from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import time

import apache_beam as beam
import pytest

from connectors.kafka_admin import ensure_topics
from connectors.kafka_sink import PRODUCER_DEFAULTS, SinkDeliveryError, WriteToKafka, producer_config
from schemas import SCHEMA_VERSION, validate_dead_letter
from schemas.wire import avro_decode, avro_fingerprint
from tests.conftest import decode
from tests.test_schemas import sample_article

MAX_MESSAGE_BYTES = 20000


def kafka_config(bootstrap: str, topic: str, **extra) -> dict:
    return {"bootstrap_servers": bootstrap, "partitions": 2, "replication_factor": 1,
            "topic_overrides": {topic: {"config": {"max.message.bytes": str(MAX_MESSAGE_BYTES)}}}, **extra}


def articles(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec = sample_article()
        rec["id"] = f"{rng.getrandbits(128):032x}"
        rec["url"] = rec["canonical_url"] = f"https://news.example/{i}"
        rec["title"] = f"Story {i}"
        out.append(rec)
    return out


def read_topic(bootstrap: str, topic: str) -> list:
    """Every record on ``topic`` up to its current end offsets (no waiting for silence)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out, deadline = [], time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=1000).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def run_write(records: list[dict], *write_args, **write_kwargs) -> None:
    with beam.Pipeline(runner="DirectRunner") as p:
        _ = p | beam.Create(records) | WriteToKafka(*write_args, **write_kwargs)


# -- producer settings (no broker) ---------------------------------------------------------------

def test_producer_settings_pass_through_with_our_defaults():
    cfg = producer_config({"bootstrap_servers": "b:9092", "producer": {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "p", "ssl_cafile": "/etc/ca.pem", "linger.ms": 50}})
    assert cfg["bootstrap_servers"] == "b:9092"
    assert cfg["security_protocol"] == "SASL_SSL" and cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl_plain_username"] == "u" and cfg["ssl_cafile"] == "/etc/ca.pem"
    assert cfg["linger_ms"] == 50  # a Java-style dotted name is accepted
    assert cfg["acks"] == "all" and cfg["enable_idempotence"] is True
    assert cfg["compression_type"] == "zstd"
    assert cfg["batch_size"] == PRODUCER_DEFAULTS["batch_size"]


def test_unknown_producer_setting_fails_when_the_pipeline_is_built():
    with pytest.raises(ValueError, match="sasl_pasword"):
        WriteToKafka("t", {"bootstrap_servers": "b:9092", "producer": {"sasl_pasword": "x"}})
    with pytest.raises(ValueError, match="delivery_timeout_ms"):
        producer_config({"bootstrap_servers": "b", "producer": {"delivery_timeout_ms": 1000}})
    with pytest.raises(ValueError, match="value_format"):
        WriteToKafka("t", {"bootstrap_servers": "b:9092"}, value_format="protobuf")


# -- against the broker --------------------------------------------------------------------------

def test_records_keyed_by_id_with_headers_and_identical_bytes(kafka_broker, topic_prefix):
    topic = f"{topic_prefix}.articles"
    cfg = kafka_config(kafka_broker.bootstrap, topic)
    ensure_topics(cfg, [topic])
    records = articles(50)
    run_write(records, topic, cfg)
    got = read_topic(kafka_broker.bootstrap, topic)
    assert sorted(m.key.decode() for m in got) == sorted(r["id"] for r in records)
    by_id = {r["id"]: r for r in records}
    for msg in got:
        assert decode(msg) == by_id[msg.key.decode()]
        assert dict(msg.headers) == {"schema_version": SCHEMA_VERSION.encode(),
                                     "content_type": b"application/json", "record_type": b"article"}
        # the wire bytes are a pure function of the record: a re-send is byte-identical
        assert msg.value == json.dumps(by_id[msg.key.decode()], ensure_ascii=False, separators=(",", ":"),
                                       sort_keys=True).encode()


def test_record_above_max_message_bytes_goes_to_dead_letter_and_run_goes_on(kafka_broker, topic_prefix):
    topic, dlq = f"{topic_prefix}.articles", f"{topic_prefix}.deadletter"
    cfg = kafka_config(kafka_broker.bootstrap, topic)
    ensure_topics(cfg, [topic, dlq])
    records = articles(300)
    big = records[150]
    big["text"] = base64.b64encode(os.urandom(3 * MAX_MESSAGE_BYTES)).decode()  # incompressible
    run_write(records, topic, cfg, dead_letter_topic=dlq)

    got = read_topic(kafka_broker.bootstrap, topic)
    keys = {m.key.decode() for m in got}
    assert keys == {r["id"] for r in records} - {big["id"]}, "every other record, before and after, arrives"
    by_id = {r["id"]: r for r in records}
    for msg in got:  # repeats from re-sent records are the same bytes
        assert decode(msg) == by_id[msg.key.decode()]

    letters = read_topic(kafka_broker.bootstrap, dlq)
    assert len(letters) == 1
    letter = decode(letters[0])
    validate_dead_letter(letter)
    assert letters[0].key.decode() == letter["input_ref"] == big["id"]
    assert letter["stage"] == "send"
    assert "max.message.bytes" in letter["reason"] and "MessageSizeTooLargeError" in letter["reason"]
    assert f"topic={topic}" in letter["detail"]
    assert dict(letters[0].headers)["record_type"] == b"dead_letter"


def test_refused_record_without_dead_letter_topic_fails_the_bundle(kafka_broker, topic_prefix):
    topic = f"{topic_prefix}.articles"
    cfg = kafka_config(kafka_broker.bootstrap, topic)
    ensure_topics(cfg, [topic])
    records = articles(5)
    records[2]["text"] = base64.b64encode(os.urandom(3 * MAX_MESSAGE_BYTES)).decode()
    with pytest.raises(SinkDeliveryError) as info:
        run_write(records, topic, cfg)
    assert records[2]["id"] in str(info.value) and "no dead-letter topic" in str(info.value)
    assert "max.message.bytes" in str(info.value)


def test_avro_values_read_back_with_the_schema_named_in_the_headers(kafka_broker, topic_prefix):
    topic = f"{topic_prefix}.articles"
    cfg = kafka_config(kafka_broker.bootstrap, topic, value_format="avro")
    ensure_topics(cfg, [topic])
    records = articles(20)
    run_write(records, topic, cfg)
    got = read_topic(kafka_broker.bootstrap, topic)
    by_id = {r["id"]: r for r in records}
    assert {m.key.decode() for m in got} == set(by_id)
    for msg in got:
        headers = dict(msg.headers)
        assert headers["content_type"] == b"avro/binary"
        assert headers["avro_schema_fingerprint"].decode() == avro_fingerprint("article.avsc")
        assert avro_decode(msg.value, "article.avsc") == by_id[msg.key.decode()]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_reads_the_records_and_their_headers(kafka_broker, topic_prefix):
    topic = f"{topic_prefix}.articles"
    cfg = kafka_config(kafka_broker.bootstrap, topic)
    ensure_topics(cfg, [topic])
    records = articles(10)
    run_write(records, topic, cfg)
    proc = subprocess.run(["kcat", "-C", "-b", kafka_broker.bootstrap, "-t", topic, "-e", "-q", "-J"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    by_id = {r["id"]: r for r in records}
    assert sorted(m["key"] for m in messages) == sorted(by_id)
    for m in messages:
        assert json.loads(m["payload"]) == by_id[m["key"]]
        pairs = m["headers"]
        headers = dict(zip(pairs[0::2], pairs[1::2]))
        assert headers == {"schema_version": SCHEMA_VERSION, "content_type": "application/json",
                           "record_type": "article"}
