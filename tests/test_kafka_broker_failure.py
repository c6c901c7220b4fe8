"""Nothing lost when the broker fails: stopped in the middle of a run, or not there at all.

The stop/start test runs its own broker (deploy/kafka/kafka.sh on another free port with its own
state directory) so the session broker other tests use is never stopped.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter

from connectors.kafka_admin import ensure_topics
from connectors.kafka_sink import WriteToKafka
from pipelines.demo import KAFKA_SCRIPT
from tests.conftest import REPO, free_port
from tests.test_kafka_sink import articles, read_topic

N_RECORDS = 600


def _free_port_pair() -> int:
    while True:  # the controller listens on port + 1
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


class OwnBroker:
    """A broker of this module's own (deploy/kafka/kafka.sh), patient with a busy machine."""

    def __init__(self, port: int, state_dir: str):
        self.port, self.state_dir, self.bootstrap = port, state_dir, f"127.0.0.1:{port}"

    def _script(self, action: str) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), action, "--port", str(self.port), "--dir", self.state_dir],
                       check=True, capture_output=True, text=True, timeout=240,
                       env={**os.environ, "KAFKA_READY_TIMEOUT": "180"})

    def start(self):
        self._script("start")

    def stop(self):
        self._script("stop")


@pytest.fixture(scope="module")
def own_broker():
    broker = OwnBroker(_free_port_pair(), tempfile.mkdtemp(prefix="newsingest-kafka-bounce-"))
    broker.start()
    try:
        yield broker
    finally:
        try:
            broker.stop()
        finally:
            shutil.rmtree(broker.state_dir, ignore_errors=True)


def _records_on(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


class Bounce(threading.Thread):
    """Stop the broker once some records have landed, keep it down, start it again."""

    def __init__(self, broker: OwnBroker, topic: str, after_records: int, down_s: float):
        super().__init__(daemon=True)
        self.broker, self.topic, self.after_records, self.down_s = broker, topic, after_records, down_s
        self.stopped_at = self.started_at = None
        self.error = None

    def run(self):
        try:
            deadline = time.monotonic() + 120
            while _records_on(self.broker.bootstrap, self.topic) < self.after_records:
                assert time.monotonic() < deadline, "the pipeline never started writing"
                time.sleep(0.2)
            self.broker.stop()
            self.stopped_at = time.monotonic()
            time.sleep(self.down_s)
            self.broker.start()
            self.started_at = time.monotonic()
        except BaseException as exc:  # reported by the test
            self.error = exc


def _slowly(record: dict) -> dict:
    time.sleep(0.02)  # spread the writes over ~12 s so the broker goes down in the middle
    return record


# "resend": short producer timeouts, so records queued while the broker is down expire and take
# the re-send path (new producer, same bytes); "defaults": the producer settings users get, where
# an outage shorter than delivery_timeout_ms (30 s) is ridden out by the producer's own retries.
@pytest.mark.parametrize("mode", ["resend", "defaults"])
def test_broker_stopped_mid_run_every_record_arrives_repeats_identical(own_broker, mode):
    topic = f"bounce.{mode}"
    producer = {"delivery_timeout_ms": 4000, "request_timeout_ms": 2000, "linger_ms": 5,
                "bootstrap_timeout_ms": 5000} if mode == "resend" else {}
    cfg = {"bootstrap_servers": own_broker.bootstrap, "partitions": 3, "send_attempts": 10, "producer": producer}
    ensure_topics(cfg, [topic])
    records = articles(N_RECORDS, seed=11)
    bounce = Bounce(own_broker, topic, after_records=N_RECORDS // 6, down_s=6)
    bounce.start()
    pipeline = beam.Pipeline(runner="DirectRunner")
    _ = pipeline | beam.Create(records) | beam.Map(_slowly) | WriteToKafka(topic, cfg)
    result = pipeline.run()
    result.wait_until_finish()
    bounce.join(timeout=180)
    assert bounce.error is None, bounce.error
    assert bounce.stopped_at is not None and bounce.started_at is not None

    got = read_topic(own_broker.bootstrap, topic)
    by_id = {r["id"]: r for r in records}
    copies = defaultdict(set)
    for msg in got:
        copies[msg.key].add((msg.value, tuple(msg.headers)))
    assert {k.decode() for k in copies} == set(by_id), "distinct ids on the topic = the inputs"
    assert all(len(versions) == 1 for versions in copies.values()), "a repeat is byte-identical, key and headers too"
    for key, versions in copies.items():
        (value, _headers), = versions
        assert json.loads(value) == by_id[key.decode()]

    counters = {c.key.metric.name: c.committed or c.attempted
                for c in result.metrics().query(MetricsFilter().with_namespace("kafka_sink"))["counters"]}
    if mode == "resend":
        assert counters.get(f"resent_{topic}", 0) > 0, f"the outage should have forced re-sends: {counters}"
    print(f"\n{len(got)} messages for {N_RECORDS} records ({len(got) - N_RECORDS} repeats), counters {counters}")


def test_broker_unreachable_at_start_clear_error_nonzero_exit(tmp_path):
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{closed.getsockname()[1]}"
        env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "SAMPLE_BASE_URL": "http://127.0.0.1:9",
               "TOPIC_PREFIX": "unreachable"}
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--config",
                               str(REPO / "examples" / "config.yaml")],
                              env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert f"no Kafka broker reachable at {bootstrap}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # bounded: the pre-flight gives up after kafka.connect_timeout_ms (10 s), plus interpreter start
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_broker_gone_for_good_fails_the_bundle_after_bounded_attempts():
    from connectors.kafka_sink import SinkDeliveryError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{closed.getsockname()[1]}"
        cfg = {"bootstrap_servers": bootstrap, "send_attempts": 2,
               "producer": {"bootstrap_timeout_ms": 1000, "max_block_ms": 1000}}
        started = time.monotonic()
        with pytest.raises(SinkDeliveryError) as info:
            with beam.Pipeline(runner="DirectRunner") as p:
                _ = p | beam.Create(articles(3)) | WriteToKafka("gone.articles", cfg)
        elapsed = time.monotonic() - started
    assert bootstrap in str(info.value) and "after 2 attempt(s)" in str(info.value)
    assert elapsed < 60, f"took {elapsed:.0f} s"
