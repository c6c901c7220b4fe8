"""Shared fixtures: a real local Kafka broker (deploy/kafka/kafka.sh) and the sample HTTP server.

The broker is started once per test session on a free port with its own state directory and
stopped at the end; set KAFKA_TEST_BOOTSTRAP to use a broker that is already running instead.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from pipelines.demo import KAFKA_SCRIPT, SampleServer

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, bootstrap: str, port: int | None = None, state_dir: str | None = None):
        self.bootstrap = bootstrap
        self.port = port
        self.state_dir = state_dir

    def _script(self, action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(KAFKA_SCRIPT), action, "--port", str(self.port), "--dir", self.state_dir],
                              check=True, capture_output=True, text=True, timeout=180)

    def stop(self):
        self._script("stop")

    def start(self):
        self._script("start")


@pytest.fixture(scope="session")
def kafka_broker():
    external = os.environ.get("KAFKA_TEST_BOOTSTRAP")
    if external:
        yield Broker(external)
        return
    port = free_port()
    while True:  # the controller listens on port + 1
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            port = free_port()
    state = tempfile.mkdtemp(prefix="newsingest-kafka-")
    broker = Broker(f"127.0.0.1:{port}", port, state)
    try:
        broker.start()
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"local Kafka did not start: {exc.stdout}\n{exc.stderr}")
    yield broker
    try:
        broker.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def sample_server():
    with SampleServer() as server:
        yield server


@pytest.fixture
def topic_prefix():
    return "t" + uuid.uuid4().hex[:10]


def consume_all(bootstrap: str, topic: str, timeout_ms: int = 5000) -> list:
    """Every record on ``topic`` from the beginning, read by a fresh consumer (no group)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        return list(consumer)
    finally:
        consumer.close()


def decode(msg) -> dict:
    return json.loads(msg.value.decode("utf-8"))
