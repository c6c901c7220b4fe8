"""Kafka sink throughput: WriteToKafka in a Beam pipeline against a bare kafka-python loop.

Both write the same enriched-article records (the texts of the aeb-dev gold articles, ~4.4 KB
each, repeated under distinct ids; synthetic text when that data is absent) to a fresh topic,
with the same producer settings (``connectors.kafka_sink.PRODUCER_DEFAULTS``: acks=all,
idempotent, zstd, the batching below), and the same JSON encoding. The bare loop is
``producer.send()`` per record then one ``flush()``; the sink is a whole DirectRunner pipeline
(records made in a FlatMap fused with ``WriteToKafka``), start-up included. Runs alternate, and each side
reports its median records per second over ``--repeat`` runs.

The broker is ``KAFKA_BOOTSTRAP`` when set; otherwise a local one is started with
``deploy/kafka/kafka.sh`` on a free port and its own state directory, and stopped at the end.

``--sweep`` also times the bare loop over compression and batching settings: the figures behind
the defaults in ``PRODUCER_DEFAULTS``.

Run: ``python benchmarks/kafka_sink.py [--records N] [--repeat N] [--sweep]``.
Ends with one JSON line: sink_records_per_s, bare_records_per_s, ratio (target >= 0.8), ...
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import apache_beam as beam  # noqa: E402

from connectors.kafka_admin import ensure_topics  # noqa: E402
from connectors.kafka_sink import WriteToKafka, producer_config  # noqa: E402
from schemas.wire import ARTICLE  # noqa: E402

KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
GOLD = [REPO.parent / "shared" / "data" / "extraction" / "aeb-dev" / "ground-truth.json",
        REPO / "benchmarks" / "data" / "extraction" / "aeb-dev" / "ground-truth.json"]


def _free_port_pair() -> int:
    while True:  # kafka.sh puts the controller on port + 1
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


@contextmanager
def broker():
    """The configured broker, or a local one started here and stopped afterwards."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    port, state = _free_port_pair(), tempfile.mkdtemp(prefix="newsingest-bench-kafka-")
    args = ["--port", str(port), "--dir", state]
    print(f"starting a local Kafka on 127.0.0.1:{port} ...", file=sys.stderr)
    subprocess.run(["bash", str(KAFKA_SCRIPT), "start", *args], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop", *args], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(state, ignore_errors=True)


def load_texts() -> list[str]:
    for path in GOLD:
        if path.exists():
            return [v["articleBody"] for v in json.loads(path.read_text(encoding="utf-8")).values() if v["articleBody"]]
    rng = random.Random(1)
    words = "the of and a to in is was said that for on with as by at from his her an were are".split()
    return [" ".join(rng.choice(words) for _ in range(700)) for _ in range(50)]


def make_record(i: int, texts: list[str]) -> dict:
    """Record ``i``: a full enriched article around one of ``texts``, with its own id."""
    text = texts[i % len(texts)]
    return {
        "id": f"{random.Random(i).getrandbits(128):032x}", "url": f"https://news.example/{i}",
        "canonical_url": f"https://news.example/{i}",
        "source": {"feed_url": "https://news.example/feed.xml", "publisher": "Example", "domain": "news.example"},
        "title": text[:80], "text": text, "lead": text[:200], "authors": ["A. Writer"],
        "published_at": "2025-03-15T10:00:00+00:00", "fetched_at": "2025-03-15T10:05:00+00:00",
        "language": "en", "source_tags": ["World"],
        "topics": [{"id": "ukraine", "label": "Ukraine", "score": 0.9,
                    "evidence": [{"term": "Kyiv", "offset": 10, "sentence": 0, "field": "text"}]}],
        "dedup": {"content_hash": "%032x" % i, "signature_digest": "%016x" % i, "cluster_id": "%032x" % i,
                  "duplicate_of": None, "similarity": None},
        "extraction": {"extractor": "trafilatura", "rules_version": "1", "removed": {}, "fallback": None},
        "site_name": "Example", "image": None, "taxonomy_version": "1", "schema_version": "1.0.0",
    }


def run_bare(n: int, texts: list[str], topic: str, kafka_config: dict, producer_overrides: dict | None = None) -> float:
    """Records per second of a plain send() loop and one flush; making and encoding the records
    is timed on both sides."""
    from kafka import KafkaProducer

    cfg = producer_config({**kafka_config, "producer": {**(kafka_config.get("producer") or {}),
                                                        **(producer_overrides or {})}})
    producer = KafkaProducer(**cfg)
    producer.partitions_for(topic)  # a connected producer with metadata before the clock: a hard baseline
    started = time.perf_counter()
    futures = []
    for i in range(n):
        key, value, headers = ARTICLE(make_record(i, texts))
        futures.append(producer.send(topic, key=key, value=value, headers=headers))
    producer.flush()
    elapsed = time.perf_counter() - started
    failed = sum(1 for f in futures if f.failed())
    producer.close()
    if failed:
        raise RuntimeError(f"bare producer: {failed} sends failed")
    return n / elapsed


def run_sink(n: int, texts: list[str], topic: str, kafka_config: dict) -> float:
    """Records per second of a whole DirectRunner pipeline writing through WriteToKafka.

    The records are made inside the pipeline (fused with the sink), as a real job's stages do:
    ``beam.Create`` of the finished records would time Create's own encoding, not the sink.
    """
    pipeline = beam.Pipeline(runner="DirectRunner")
    _ = (pipeline | beam.Create([n]) | beam.FlatMap(lambda count: (make_record(i, texts) for i in range(count)))
         | WriteToKafka(topic, kafka_config))
    started = time.perf_counter()
    pipeline.run().wait_until_finish()
    return n / (time.perf_counter() - started)


def topic_count(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def sweep(n: int, texts: list[str], kafka_config: dict) -> list[dict]:
    kib = 1024
    settings = [{"compression_type": "zstd", "linger_ms": 10, "batch_size": bs * kib} for bs in (16, 64, 256, 512, 1024)]
    settings += [{"compression_type": "zstd", "linger_ms": lg, "batch_size": 512 * kib} for lg in (0, 50)]
    settings += [{"compression_type": c, "linger_ms": 10, "batch_size": 512 * kib} for c in ("gzip", None)]
    rows = []
    for s in settings:
        topic = f"bench.sweep.{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka_config, [topic])
        rate = run_bare(n, texts, topic, kafka_config, s)
        rows.append({**s, "records_per_s": round(rate)})
        print(f"  sweep {s}: {rate:,.0f} records/s", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also time the bare loop over producer settings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    texts = load_texts()
    avg_bytes = statistics.mean(len(ARTICLE(make_record(i, texts))[1]) for i in range(500))
    results = {"sink": [], "bare": []}
    with broker() as bootstrap:
        kafka_config = {"bootstrap_servers": bootstrap, "partitions": args.partitions, "replication_factor": 1}
        ensure_topics(kafka_config, ["bench.warmup"])
        for run in (run_bare, run_sink):  # one-time costs (imports, the runner's modules) out of the way
            run(500, texts, "bench.warmup", kafka_config)
        for i in range(args.repeat):
            for side, run in (("bare", run_bare), ("sink", run_sink)):
                topic = f"bench.{side}.{uuid.uuid4().hex[:8]}"
                ensure_topics(kafka_config, [topic])
                rate = run(args.records, texts, topic, kafka_config)
                landed = topic_count(bootstrap, topic)
                assert landed >= args.records, f"{side}: only {landed} of {args.records} records on {topic}"
                results[side].append(rate)
                print(f"run {i + 1} {side:<4} {rate:>10,.0f} records/s", file=sys.stderr)
        sweep_rows = sweep(args.records // 2, texts, kafka_config) if args.sweep else None

    sink, bare = statistics.median(results["sink"]), statistics.median(results["bare"])
    defaults = producer_config({"bootstrap_servers": ""})
    summary = {
        "records": args.records, "avg_value_bytes": round(avg_bytes), "repeat": args.repeat,
        "sink_records_per_s": round(sink), "bare_records_per_s": round(bare), "ratio": round(sink / bare, 3),
        "sink_runs": [round(r) for r in results["sink"]], "bare_runs": [round(r) for r in results["bare"]],
        "producer": {k: defaults[k] for k in ("acks", "enable_idempotence", "compression_type", "linger_ms",
                                              "batch_size")},
    }
    if sweep_rows is not None:
        summary["sweep"] = sweep_rows
    print(f"WriteToKafka {sink:,.0f} records/s, bare kafka-python {bare:,.0f} records/s, "
          f"ratio {sink / bare:.2f} (target >= 0.8)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
