"""The Kafka sink: a pure-Python ``WriteToKafka`` on kafka-python.

One producer per DoFn instance, created in ``setup`` (acks=all, idempotent, zstd). Every send's
future is kept and checked in ``finish_bundle`` after a flush, so a send that failed fails the
bundle and the runner retries it: at-least-once, never silently lost. A record the broker will
never take (larger than the topic allows) is not retried forever: it becomes a dead-letter record
on the dead-letter topic and the run goes on. Producer settings (SASL, SSL, batching) pass through
from the config untouched.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Callable, Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import SCHEMA_VERSION, DeadLetter

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "compression_type": "zstd",
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "max_request_size": 4 * 1024 * 1024,
    "request_timeout_ms": 15000,
    "delivery_timeout_ms": 60000,
    "max_block_ms": 15000,
}

Encoded = tuple[bytes, bytes, list[tuple[str, bytes]]]


def encode_json(record: Mapping[str, Any], key_field: str = "id", record_type: str = "article") -> Encoded:
    """Key = the record's id, value = compact UTF-8 JSON, headers = schema version and type."""
    value = json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    headers = [
        ("schema_version", SCHEMA_VERSION.encode()),
        ("content_type", b"application/json"),
        ("record_type", record_type.encode()),
    ]
    return str(record[key_field]).encode("utf-8"), value, headers


def encode_dead_letter(record: Mapping[str, Any]) -> Encoded:
    return encode_json(record, key_field="input_ref", record_type="dead_letter")


def producer_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    cfg = dict(PRODUCER_DEFAULTS)
    cfg.update(kafka_config.get("producer") or {})
    cfg["bootstrap_servers"] = kafka_config["bootstrap_servers"]
    if cfg.get("compression_type") == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            cfg["compression_type"] = "gzip"
    return cfg


def _never_deliverable(exc: BaseException) -> bool:
    from kafka import errors

    return isinstance(exc, (errors.MessageSizeTooLargeError, errors.RecordTooLargeError,
                            errors.InvalidRecordError, errors.TopicAuthorizationFailedError))


class _KafkaWriteFn(beam.DoFn):
    def __init__(self, topic: str, config: dict[str, Any], encoder: Callable[[Mapping], Encoded],
                 dead_letter_topic: Optional[str], flush_timeout_s: float):
        self.topic = topic
        self.config = config
        self.encoder = encoder
        self.dead_letter_topic = dead_letter_topic
        self.flush_timeout_s = flush_timeout_s
        self.sent = Metrics.counter("kafka_sink", f"sent_{topic}")
        self.dead = Metrics.counter("kafka_sink", f"dead_letter_{topic}")

    def setup(self):
        from kafka import KafkaProducer

        self.producer = KafkaProducer(**self.config)

    def start_bundle(self):
        self.pending: list[tuple[Any, Mapping, bytes]] = []

    def process(self, record: Mapping[str, Any]):
        key, value, headers = self.encoder(record)
        try:
            future = self.producer.send(self.topic, key=key, value=value, headers=headers)
        except Exception as exc:  # a client-side refusal, e.g. larger than max_request_size
            if not _never_deliverable(exc):
                raise
            self._dead_letter(key, exc)
            return
        self.pending.append((future, record, key))

    def finish_bundle(self):
        self.producer.flush(timeout=self.flush_timeout_s)
        failures = []
        for future, _record, key in self.pending:
            if not future.is_done:
                failures.append(f"{key.decode(errors='replace')}: not acknowledged within {self.flush_timeout_s:g} s")
            elif future.failed():
                if _never_deliverable(future.exception):
                    self._dead_letter(key, future.exception)
                else:
                    failures.append(f"{key.decode(errors='replace')}: {future.exception!r}")
            else:
                self.sent.inc()
        self.pending = []
        if self.dead_letter_topic:
            self.producer.flush(timeout=self.flush_timeout_s)
        if failures:
            # failing the bundle makes the runner retry it; the stable key lets consumers drop repeats
            raise RuntimeError(f"{len(failures)} Kafka send(s) to {self.topic!r} failed, e.g. {failures[0]}")

    def _dead_letter(self, key: bytes, exc: BaseException):
        self.dead.inc()
        log.warning("record %s to %s is undeliverable: %r", key, self.topic, exc)
        if not self.dead_letter_topic:
            raise exc
        letter = DeadLetter(
            stage="send", reason=f"{type(exc).__name__}: {exc}"[:500], input_ref=key.decode(errors="replace"),
            failed_at=dt.datetime.now(dt.timezone.utc).isoformat(), detail=f"topic={self.topic}",
        ).to_dict()
        k, v, h = encode_dead_letter(letter)
        self.producer.send(self.dead_letter_topic, key=k, value=v, headers=h)

    def teardown(self):
        producer = getattr(self, "producer", None)
        if producer is not None:
            producer.close(timeout=self.flush_timeout_s)


class WriteToKafka(beam.PTransform):
    """Write dict records to ``topic``; undeliverable ones go to ``dead_letter_topic``."""

    def __init__(self, topic: str, kafka_config: Mapping[str, Any], encoder: Callable[[Mapping], Encoded] = encode_json,
                 dead_letter_topic: Optional[str] = None, flush_timeout_s: float = 60.0):
        super().__init__()
        self.fn = _KafkaWriteFn(topic, producer_config(kafka_config), encoder, dead_letter_topic, flush_timeout_s)

    def expand(self, records):
        return records | beam.ParDo(self.fn)
