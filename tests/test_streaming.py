"""Real streaming on Prism: a feed that gains entries while the job runs.

The job polls a feed served from loopback, extracts, deduplicates, tags and writes to the real
broker. While it runs the test publishes a new entry and then a near-duplicate of an old one, and
checks: the new article arrives within poll interval + 10 s, the old entries are not emitted again,
and the near-duplicate published later is recognised across polls.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from pipelines.demo import SampleServer
from tests.conftest import REPO
from tests.streaming_support import GrowingSite, TopicWatcher, start_job, stop_job, write_config

POLL_S = 2.0


def prism_location() -> str | None:
    path = os.environ.get("PRISM_LOCATION")
    if not path:
        try:
            path = subprocess.run(["bash", str(REPO / "deploy" / "prism.sh"), "path"], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None
    return path if path and os.access(path, os.X_OK) else None


def titles(records, topic):
    return [r[2]["title"] for r in records[topic]]


def run_growing_feed_scenario(kafka_broker, tmp_path, runner_args, startup_s=240.0):
    site = GrowingSite(tmp_path / "site")
    site.publish("ledger", "farm")
    prefix = "s" + uuid.uuid4().hex[:8]
    articles, dups = f"{prefix}.articles", f"{prefix}.duplicates"
    with SampleServer(root=site.root) as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, kafka_broker.bootstrap, prefix, POLL_S)
        log = tmp_path / "job.log"
        proc = start_job(config, runner_args, log)
        watcher = TopicWatcher(kafka_broker.bootstrap, [articles, dups, f"{prefix}.deadletter"])
        try:
            assert watcher.wait_for(lambda r: len(r[articles]) >= 2, startup_s, proc, log), \
                f"the first entries never arrived:\n{log.read_text(errors='replace')[-4000:]}"

            site.publish("summit")
            published = time.monotonic()
            assert watcher.wait_for(lambda r: any("NATO leaders" in t for t in titles(r, articles)),
                                    POLL_S + 10, proc, log), "the new entry did not arrive within poll + 10 s"
            arrived = next(ts for ts, _, rec in watcher.records[articles] if "NATO leaders" in rec["title"])
            assert arrived - published <= POLL_S + 10

            site.publish("reprint")
            assert watcher.wait_for(lambda r: len(r[dups]) >= 1, POLL_S + 30, proc, log), \
                f"the near-duplicate published later was not recognised; articles: {titles(watcher.records, articles)}"
            watcher.wait_for(lambda r: False, 3 * POLL_S)  # a few more polls: nothing may repeat
        finally:
            stop_job(proc)
            watcher.close()
    main = [rec for _, _, rec in watcher.records[articles]]
    ids = [rec["id"] for rec in main]
    assert len(ids) == len(set(ids)) == 3, f"old entries emitted again or missing: {titles(watcher.records, articles)}"
    copy = watcher.records[dups][0][2]
    original = next(rec for rec in main if "Zelensky Admits" in rec["title"])
    assert copy["dedup"]["duplicate_of"] == original["id"]
    assert not any(rec["title"] == "Zelensky says Ukraine may never join NATO" for rec in main)
    for _, key, rec in watcher.records[articles] + watcher.records[dups]:
        assert key.decode() == rec["id"]


@pytest.mark.streaming
def test_prism_streaming_growing_feed(kafka_broker, tmp_path):
    prism = prism_location()
    if prism is None:
        pytest.fail("Prism is not installed: run `bash deploy/prism.sh install` (deploy/run-tests.sh does)")
    run_growing_feed_scenario(kafka_broker, tmp_path, ["--runner=PrismRunner", f"--prism_location={prism}",
                                                       "--environment_type=LOOPBACK"])
