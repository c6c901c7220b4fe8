"""The Kafka sink: a pure-Python ``WriteToKafka`` on kafka-python.

One producer per DoFn instance, created in ``setup``: acks=all, idempotent, zstd, batching sized
by ``benchmarks/kafka_sink.py``. Every record sent in a bundle is kept, already encoded, until
``finish_bundle`` has flushed the producer and checked its future:

- acknowledged: done;
- refused by the broker (larger than the topic's ``max.message.bytes``, or invalid there): a
  dead-letter record goes to the dead-letter topic (stage ``send``, the record's key as
  ``input_ref``) and the run goes on. kafka-python 3.0.12 then fails everything else its
  idempotent producer holds with the same error, so the refused records are re-sent in ever
  smaller groups on fresh producers until each refusal is pinned on one record;
- anything else (broker down, timeouts): the producer is replaced by a new one and the failed
  records are sent again, byte for byte, with a doubling back-off, up to ``send_attempts`` rounds.
  When they still fail, ``finish_bundle`` raises, the bundle fails, and a runner that retries
  bundles (Flink, Dataflow) replays it. The Python DirectRunner's batch path (FnApiRunner) does
  not retry a failed bundle at all (its streaming path retries one 4 times), which is why the
  bounded retry lives here.

Replacing the producer, rather than waiting on it, is deliberate: in kafka-python 3.0.12 an
idempotent producer whose already-sent batch expires (a broker down for longer than
``delivery_timeout_ms``) resets its producer id and never asks for a new one, so it stops
sending for good. A re-sent record can land twice (delivery is at least once); both copies carry
the same key, value and headers, so consumers drop repeats by key. A broker outage shorter than
``delivery_timeout_ms`` is absorbed by the producer's own retries, without repeats.

Producer settings pass through from ``kafka.producer`` in the config (any kafka-python
``KafkaProducer`` setting: SASL, SSL, batching; Java-style dotted names are accepted) and are
checked when the pipeline is built, not on the workers.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import DeadLetter
from schemas.wire import ARTICLE, DEAD_LETTER, Encoded, RecordEncoder

log = logging.getLogger(__name__)

# The old names of the two encoders, kept for callers (pipelines/ingest.py).
encode_json = encode_article = ARTICLE
encode_dead_letter = DEAD_LETTER

# Batching measured with `python benchmarks/kafka_sink.py --sweep` (5.7 KB article records, local
# broker, 2 shared cores): zstd 16 KiB batches 0.8-0.9k records/s, 64 KiB 1.1-1.6k, 256 KiB-1 MiB
# 2.1-3.0k; at 512 KiB gzip 1.4k, uncompressed 0.8-1.1k. Requests, not CPU, are the limit, so big
# zstd batches; 512 KiB stays under the broker's default 1 MB max.message.bytes even uncompressed.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "compression_type": "zstd",
    "linger_ms": 10,
    "batch_size": 512 * 1024,
    "max_request_size": 4 * 1024 * 1024,
    "request_timeout_ms": 10000,
    "delivery_timeout_ms": 30000,
    "max_block_ms": 15000,
    "bootstrap_timeout_ms": 15000,
}
DEFAULT_SEND_ATTEMPTS = 5
MAX_PENDING_BYTES = 64 * 1024 * 1024  # settle a bundle early past this much unacknowledged data
BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0


class SinkDeliveryError(RuntimeError):
    """Records could not be written after every attempt: the bundle fails."""


def producer_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    """The KafkaProducer settings: our defaults, then ``kafka.producer`` from the config."""
    from kafka import KafkaProducer

    cfg = dict(PRODUCER_DEFAULTS)
    cfg.update({str(k).replace(".", "_"): v for k, v in (kafka_config.get("producer") or {}).items()})
    cfg["bootstrap_servers"] = kafka_config["bootstrap_servers"]
    unknown = sorted(set(cfg) - set(KafkaProducer.DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown Kafka producer setting(s) in kafka.producer: {', '.join(unknown)}")
    if cfg.get("compression_type") == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            cfg["compression_type"] = "gzip"
    if cfg["delivery_timeout_ms"] < cfg["linger_ms"] + cfg["request_timeout_ms"]:
        raise ValueError("kafka.producer: delivery_timeout_ms must be at least linger_ms + request_timeout_ms")
    return cfg


def _refusal(exc: BaseException) -> bool:
    """The record (or one sharing its producer) will be refused however often it is sent:
    larger than the topic's max.message.bytes, or invalid there (e.g. no key on a compacted topic)."""
    from kafka import errors

    return isinstance(exc, (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError,
                            errors.InvalidRecordError))


def _describe(exc: BaseException) -> str:
    """A readable reason; kafka-python's own messages for broker refusals are bare error codes."""
    from kafka import errors

    if isinstance(exc, (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError)):
        return (f"{type(exc).__name__}: larger than the topic's max.message.bytes (or the producer's "
                f"max_request_size) allows")
    if isinstance(exc, errors.InvalidRecordError):
        return f"{type(exc).__name__}: the topic refuses this record (e.g. no key on a compacted topic)"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Outgoing:
    """One encoded record and the state of its latest send."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    attempt: int = 0
    future: Any = None
    error: Optional[BaseException] = None


def _close(producer, timeout_s: float) -> None:
    """Close a producer; one whose sender is stuck (see the module docstring) is stopped by force."""
    from kafka.errors import KafkaError

    try:
        producer.close(timeout=timeout_s)
        return
    except KafkaError:  # close() flushes first and raises while the stuck sender holds records
        pass
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()  # fails the futures of what it still holds
        sender.join(5)
    try:
        producer.close(timeout=0)
    except KafkaError:
        log.warning("could not close an abandoned Kafka producer cleanly")


class _KafkaWriteFn(beam.DoFn):
    def __init__(self, topic: str, config: dict[str, Any], encoder: Callable[[Mapping], Encoded],
                 dead_letter_topic: Optional[str], dead_letter_encoder: RecordEncoder,
                 flush_timeout_s: float, send_attempts: int):
        self.topic = topic
        self.config = config
        self.encoder = encoder
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_encoder = dead_letter_encoder
        self.flush_timeout_s = flush_timeout_s
        self.send_attempts = send_attempts
        self.sent = Metrics.counter("kafka_sink", f"sent_{topic}")
        self.dead = Metrics.counter("kafka_sink", f"dead_letter_{topic}")
        self.resent = Metrics.counter("kafka_sink", f"resent_{topic}")
        self.replaced = Metrics.counter("kafka_sink", f"producers_replaced_{topic}")

    # -- lifecycle ---------------------------------------------------------------------------
    def setup(self):
        self.producer = None
        self.producer_error: Optional[BaseException] = None
        self._new_producer()

    def start_bundle(self):
        self.pending: list[_Outgoing] = []
        self.pending_bytes = 0

    def process(self, record: Mapping[str, Any]):
        try:
            key, value, headers = self.encoder(record)
        except (TypeError, ValueError, KeyError) as exc:  # a record the wire format cannot carry
            ref = str(record.get(getattr(self.encoder, "key_field", "id"), "")) if isinstance(record, Mapping) else ""
            self._queue(self._dead_letter(_Outgoing(self.topic, ref.encode(), b"", []), exc, "cannot be encoded"))
            return
        queued = self._queue(_Outgoing(self.topic, key, value, headers))
        if not queued or self.pending_bytes >= MAX_PENDING_BYTES:
            self._deliver()

    def finish_bundle(self):
        self._deliver()

    def teardown(self):
        producer, self.producer = getattr(self, "producer", None), None
        if producer is not None:
            _close(producer, self.flush_timeout_s)

    # -- sending -----------------------------------------------------------------------------
    def _new_producer(self) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self.producer = KafkaProducer(**self.config)
        except KafkaError as exc:  # broker unreachable: the sends fail and are retried
            log.warning("cannot create a Kafka producer for %s: %r", self.config["bootstrap_servers"], exc)
            self.producer, self.producer_error = None, exc

    def _replace_producer(self) -> None:
        old, self.producer = self.producer, None
        if old is not None:
            _close(old, 0)
        self.replaced.inc()
        self._new_producer()

    def _send(self, out: _Outgoing) -> bool:
        """Hand ``out`` to the producer, or note why it could not be."""
        from kafka.errors import KafkaError

        out.attempt += 1
        out.future = out.error = None
        if self.producer is None:
            out.error = self.producer_error
        else:
            try:
                out.future = self.producer.send(out.topic, key=out.key, value=out.value, headers=out.headers)
            except KafkaError as exc:  # refused before queueing: larger than max_request_size, metadata timeout
                out.error = exc
        return out.error is None

    def _queue(self, out: _Outgoing) -> bool:
        """Send ``out`` and keep it until it is settled."""
        self.pending.append(out)
        self.pending_bytes += len(out.key) + len(out.value)
        return self._send(out)

    def _flush(self) -> None:
        """Wait up to ``flush_timeout_s`` for every send to complete; what did not shows in its future."""
        from kafka.errors import KafkaError, KafkaTimeoutError

        if self.producer is None:
            return
        deadline = time.monotonic() + self.flush_timeout_s
        while True:
            try:
                self.producer.flush(timeout=max(deadline - time.monotonic(), 0))
                return
            except KafkaTimeoutError:
                log.warning("Kafka producer did not drain within %g s", self.flush_timeout_s)
                return
            except KafkaError as exc:  # kafka-python 3.0.12 says "Future not done" while it splits a batch
                if time.monotonic() >= deadline:
                    log.warning("Kafka producer flush failed: %r", exc)
                    return
                time.sleep(0.01)

    def _outcome(self, out: _Outgoing) -> Optional[BaseException]:
        from kafka.errors import KafkaTimeoutError

        if out.future is None:
            return out.error
        if not out.future.is_done:
            return KafkaTimeoutError(f"not acknowledged within {self.flush_timeout_s:g} s")
        return out.future.exception if out.future.failed() else None

    def _deliver(self) -> None:
        """Settle every pending record: acknowledged, dead-lettered, or re-sent until attempts run out."""
        round_ = 1
        while self.pending:
            batch, self.pending, self.pending_bytes = self.pending, [], 0
            self._flush()
            retry, refused, culprits = [], [], []
            for out in batch:
                error = self._outcome(out)
                if error is None:
                    self.sent.inc()
                elif _refusal(error) and out.future is None:  # the client measured this record alone
                    culprits.append((out, error, "refused by the producer"))
                elif _refusal(error):
                    refused.append(out)
                else:
                    retry.append((out, error))
            if refused:
                more_culprits, more_retry = self._isolate(refused)
                culprits += [(out, error, "refused by the broker") for out, error in more_culprits]
                retry += more_retry
            letters = [self._dead_letter(out, error, what) for out, error, what in culprits]
            if retry:
                if round_ >= self.send_attempts:
                    out, error = retry[0]
                    raise SinkDeliveryError(
                        f"{len(retry)} record(s) to {out.topic!r} at {self.config['bootstrap_servers']} not "
                        f"written after {round_} attempt(s), e.g. key {out.key.decode(errors='replace')}: "
                        f"{error!r}; failing the bundle")
                delay = min(BACKOFF_S * 2 ** (round_ - 1), MAX_BACKOFF_S)
                log.warning("%d record(s) to %s failed (%r); new producer and re-send in %g s (round %d of %d)",
                            len(retry), retry[0][0].topic, retry[0][1], delay, round_ + 1, self.send_attempts)
                time.sleep(delay)
                round_ += 1
                self._replace_producer()
                self.resent.inc(len(retry))
            for out in [out for out, _ in retry] + letters:
                self._queue(out)

    def _isolate(self, suspects: list[_Outgoing]):
        """Tell the records the broker refuses from those refused only because they shared its producer.

        After one refusal kafka-python 3.0.12 fails everything else its idempotent producer holds
        with the same error, so the suspects are re-sent in ever smaller groups, each on a fresh
        producer, until every refusal is pinned on a record sent alone. Few rounds for few culprits.
        Returns (culprits with their errors, records that failed otherwise, with theirs).
        """
        culprits, retry, groups = [], [], [suspects]
        while groups:
            group = groups.pop()
            self._replace_producer()
            for out in group:
                self._send(out)
            self._flush()
            failed = []
            for out in group:
                error = self._outcome(out)
                if error is None:
                    self.sent.inc()
                elif _refusal(error):
                    failed.append((out, error))
                else:
                    retry.append((out, error))
            if len(group) == 1:
                culprits += failed
            elif failed and len(failed) < len(group):
                groups.append([out for out, _ in failed])
            elif failed:
                half = len(group) // 2
                groups += [group[half:], group[:half]]
        if culprits:
            self._replace_producer()  # the last refusal left this one failing everything
        return culprits, retry

    def _dead_letter(self, out: _Outgoing, error: BaseException, what: str) -> _Outgoing:
        """The dead-letter record for ``out``, ready to queue; raises when there is nowhere to put it."""
        key = out.key.decode(errors="replace")
        if not self.dead_letter_topic or out.topic == self.dead_letter_topic:
            raise SinkDeliveryError(f"record {key} for topic {out.topic!r}: {what} ({_describe(error)}), and there "
                                    "is no dead-letter topic to take it")
        self.dead.inc()
        log.warning("record %s for %s: %s (%r); dead letter to %s", key, out.topic, what, error, self.dead_letter_topic)
        letter = DeadLetter(
            stage="send", reason=f"{what}: {_describe(error)}"[:1000], input_ref=key,
            failed_at=dt.datetime.now(dt.timezone.utc).isoformat(), attempt=max(out.attempt, 1),
            detail=f"topic={out.topic} value_bytes={len(out.value)}",
        ).to_dict()
        return _Outgoing(self.dead_letter_topic, *self.dead_letter_encoder(letter))


class WriteToKafka(beam.PTransform):
    """Write dict records to ``topic``; undeliverable ones go to ``dead_letter_topic``.

    ``value_format`` ("json" or "avro", default ``kafka.value_format`` or "json") applies to the
    bundled encoders; a custom ``encoder`` callable (record -> (key, value, headers)) is used as is.
    ``send_attempts`` (default ``kafka.send_attempts`` or 5) bounds the re-send rounds per bundle.
    """

    def __init__(self, topic: str, kafka_config: Mapping[str, Any], encoder: Callable[[Mapping], Encoded] = encode_json,
                 dead_letter_topic: Optional[str] = None, flush_timeout_s: Optional[float] = None,
                 value_format: Optional[str] = None, send_attempts: Optional[int] = None):
        super().__init__()
        config = producer_config(kafka_config)
        value_format = value_format or kafka_config.get("value_format") or "json"
        if isinstance(encoder, RecordEncoder):
            encoder = encoder.with_format(value_format)
        if flush_timeout_s is None:  # long enough for the producer's own retries to give up first
            flush_timeout_s = config["delivery_timeout_ms"] / 1000 + 5
        attempts = int(send_attempts or kafka_config.get("send_attempts") or DEFAULT_SEND_ATTEMPTS)
        if attempts < 1:
            raise ValueError("send_attempts must be at least 1")
        self.fn = _KafkaWriteFn(topic, config, encoder, dead_letter_topic, DEAD_LETTER.with_format(value_format),
                                flush_timeout_s, attempts)

    def expand(self, records):
        return records | "Send" >> beam.ParDo(self.fn)
