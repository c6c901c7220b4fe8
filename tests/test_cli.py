"""The `newsingest` subcommands that need no broker, run as a user would run them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import DATA, REPO

SEED_PAGES = sorted((DATA / "seed").glob("*.html"))


def newsingest(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})}, cwd=REPO)


def test_extract_prints_one_clean_record_per_page():
    proc = newsingest("extract", *map(str, SEED_PAGES))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(SEED_PAGES)
    for path, line in zip(SEED_PAGES, lines):
        rec = json.loads(line)
        assert rec["path"] == str(path)
        assert rec["title"].startswith("Volodymyr Zelensky Admits Ukraine May Never Join NATO")
        assert rec["published_at"] == "2022-03-16T10:12:00+00:00"
        assert "Zelensky on Ceasefire Efforts With Vladimir Putin" in rec["text"]
        for junk in ("Getty Images", "@YouTube", "Tags:", "Real Time Analytics", "Share this", "Great reporting"):
            assert junk not in rec["text"], (path.name, junk)
        assert {"Ukraine", "NATO", "Russia"} <= set(rec["source_tags"])


def test_extract_reports_unreadable_file_and_exits_non_zero(tmp_path):
    empty = tmp_path / "empty.html"
    empty.write_text("")
    proc = newsingest("extract", str(empty), str(SEED_PAGES[0]))
    assert proc.returncode == 1
    assert "empty.html" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1  # the good page still comes out


def test_tag_and_dedup_round_trip():
    text = (DATA / "seed" / "seed-article.txt").read_text(encoding="utf-8")
    records = [
        {"id": "a", "title": "Zelensky says Ukraine may never join NATO", "text": text},
        {"id": "b", "title": "Reprint", "text": "KYIV (Wire) - " + text + "\n(Reporting by Wire staff)"},
        {"id": "c", "title": "Corn prices", "text": "Corn futures rose in Chicago on Tuesday. " * 30},
    ]
    proc = newsingest("tag", stdin="\n".join(json.dumps(r) for r in records))
    assert proc.returncode == 0, proc.stderr
    tagged = [json.loads(x) for x in proc.stdout.splitlines()]
    assert {t["id"] for t in tagged[0]["topics"]} == {"ukraine", "nato", "russia"}
    assert tagged[2]["topics"] == []
    path = REPO / "out-test-dedup.jsonl"
    try:
        path.write_text("\n".join(json.dumps(r) for r in records))
        proc = newsingest("dedup", str(path))
    finally:
        path.unlink()
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert out[0]["duplicate_of"] is None and out[0]["cluster_id"] == "a"
    assert out[1]["duplicate_of"] == "a" and out[1]["cluster_id"] == "a"
    assert out[2]["duplicate_of"] is None and out[2]["cluster_id"] == "c"


def test_run_with_jsonl_sink_needs_no_broker(sample_server, tmp_path):
    env = {"SAMPLE_BASE_URL": sample_server.base_url, "KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    proc = newsingest("run", "--config", str(REPO / "examples" / "config.yaml"), "--sink", "jsonl",
                      "--output", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    articles = [json.loads(x) for x in (tmp_path / "articles.jsonl").read_text().splitlines()]
    dead = [json.loads(x) for x in (tmp_path / "dead_letter.jsonl").read_text().splitlines()]
    dups = [json.loads(x) for x in (tmp_path / "duplicates.jsonl").read_text().splitlines()]
    assert len(articles) == 3 and len(dups) == 1
    assert sorted(d["stage"] for d in dead) == ["fetch", "parse"]


def test_streaming_jobs_wait_longer_than_the_job_servers_default_deadline():
    """Portable runners use --job_server_timeout as the deadline of the job's state stream."""
    from apache_beam.options.pipeline_options import PortableOptions

    from pipelines.cli import STREAMING_JOB_SERVER_TIMEOUT_S, pipeline_options

    options, streaming = pipeline_options(["--streaming", "--runner=PrismRunner"])
    assert streaming and options.view_as(PortableOptions).job_server_timeout == STREAMING_JOB_SERVER_TIMEOUT_S
    options, _ = pipeline_options(["--streaming", "--job_server_timeout=60"])
    assert options.view_as(PortableOptions).job_server_timeout == 60
    options, streaming = pipeline_options(["--runner=DirectRunner"])
    assert not streaming and options.view_as(PortableOptions).job_server_timeout == 300


def test_step_msecs_reports_where_a_direct_job_spends_its_time():
    import time as _time

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from apache_beam.metrics import Metrics

    from pipelines.cli import job_metrics

    seen = Metrics.counter("test", "seen")
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner", "--direct_num_workers=1"]))
    _ = pipeline | beam.Create(range(4)) | "Slow" >> beam.Map(lambda x: _time.sleep(0.3) or seen.inc() or x)
    result = pipeline.run()
    result.wait_until_finish()
    counters, steps = job_metrics(result)
    assert steps.get("Slow", 0) >= 600, steps
    assert counters == {"test.seen": 4}
