"""The whole job, end to end: sample HTTP server + real Kafka broker + `newsingest run`.

A separate consumer then reads the topics and checks what a user of the topics would check.
"""
from __future__ import annotations

import os
import subprocess
import sys

import uuid

import pytest

from pipelines.demo import SampleServer
from schemas import SCHEMA_VERSION, validate_article, validate_dead_letter
from tests.conftest import REPO, consume_all, decode

JUNK = ["Getty Images", "Photo by", "@YouTube", "Tags:", "Real Time Analytics", "LONDON, ENGLAND - MARCH 15"]


@pytest.fixture(scope="module")
def job_output(kafka_broker):
    with SampleServer() as sample_server:
        return _run_job(kafka_broker, sample_server, "t" + uuid.uuid4().hex[:10])


def _run_job(kafka_broker, sample_server, topic_prefix):
    env = {**os.environ, "SAMPLE_BASE_URL": sample_server.base_url, "KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
           "TOPIC_PREFIX": topic_prefix}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--config", str(REPO / "examples" / "config.yaml")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    topics = {name: consume_all(kafka_broker.bootstrap, f"{topic_prefix}.{name}")
              for name in ("articles", "duplicates", "deadletter")}
    return proc, topics


def test_end_to_end_records_on_kafka(job_output):
    proc, topics = job_output
    assert "news-ingest run finished" in proc.stdout
    articles = [(m, decode(m)) for m in topics["articles"]]
    assert articles, "no article reached the articles topic"
    for msg, rec in articles:
        validate_article(rec)
        assert msg.key.decode() == rec["id"]
        headers = dict(msg.headers)
        assert headers["schema_version"] == SCHEMA_VERSION.encode()
        assert headers["content_type"] == b"application/json"

    seed = [rec for _, rec in articles if "Zelensky Admits Ukraine May Never Join NATO" in (rec["title"] or "")]
    assert len(seed) == 1, "the seed-like article must arrive exactly once"
    seed = seed[0]
    for junk in JUNK:
        assert junk not in seed["text"], f"{junk!r} leaked into the article text"
    assert not seed["text"].startswith(seed["title"]), "the headline is repeated as the first line"
    assert "In a significant concession that might open the door to peace" in seed["text"]
    assert "Ukraine has been receiving military weaponry from the US" in seed["text"]
    assert {"Ukraine", "NATO", "Russia", "Vladimir putin"} <= set(seed["source_tags"])
    topics = {t["id"]: t for t in seed["topics"]}
    assert {"ukraine", "nato", "russia"} <= set(topics)
    for tid in ("ukraine", "nato", "russia"):
        assert topics[tid]["evidence"], f"{tid} has no evidence"
        for ev in topics[tid]["evidence"]:
            source = seed["title"] if ev["field"] == "title" else seed["text"]
            assert source[ev["offset"]:ev["offset"] + len(ev["term"])] == ev["term"]

    # the US grain-market story mentions Ukraine once in passing: no topic
    grain = [rec for _, rec in articles if "soybean" in (rec["title"] or "")]
    assert len(grain) == 1 and grain[0]["topics"] == []


def test_end_to_end_syndicated_copy_goes_to_duplicates(job_output):
    _, topics = job_output
    articles = [decode(m) for m in topics["articles"]]
    assert not any(r["title"] == "Zelensky says Ukraine may never join NATO" for r in articles)
    dups = [(m, decode(m)) for m in topics["duplicates"]]
    assert len(dups) == 1
    msg, copy = dups[0]
    validate_article(copy)
    assert msg.key.decode() == copy["id"]
    original = next(r for r in articles if "Zelensky Admits" in (r["title"] or ""))
    assert copy["dedup"]["duplicate_of"] == original["id"]
    assert copy["dedup"]["cluster_id"] == original["dedup"]["cluster_id"] == original["id"]


def test_end_to_end_failures_are_dead_letters(job_output):
    _, topics = job_output
    letters = [(m, decode(m)) for m in topics["deadletter"]]
    for msg, letter in letters:
        validate_dead_letter(letter)
        assert msg.key.decode() == letter["input_ref"]
        assert letter["reason"]
    by_ref = {letter["input_ref"].rsplit("/", 1)[-1]: letter for _, letter in letters}
    assert by_ref["brussels-summit-preview.html"]["stage"] == "fetch"
    assert "500" in by_ref["brussels-summit-preview.html"]["reason"]
    assert by_ref["broken.xml"]["stage"] == "parse"
    assert "not a feed" in by_ref["broken.xml"]["reason"]
