"""The throughput and soak benchmarks: their corpus helpers, and smoke runs in a tiny mode.

The smoke runs check that each script runs end to end against the real broker and ends with the
JSON line its readers rely on; they time nothing (speed is the scripts' business, not a test's).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import soak  # noqa: E402
import throughput  # noqa: E402


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_scramble_changes_only_the_text():
    html = (b'<html><head><title>Kyiv talks</title><script>var a = "keep";</script></head>'
            b'<body class="story"><p>Leaders met &amp; talked.</p><!-- note --></body></html>')
    copy = throughput.scramble(html, 3)
    assert len(copy) == len(html)
    assert re.findall(rb"<[^>]*>", copy) == re.findall(rb"<[^>]*>", html)  # markup as it was
    assert b'var a = "keep";' in copy and b"&amp;" in copy and b"<!-- note -->" in copy
    assert b"Leaders met" not in copy and b"Kyiv talks" not in copy
    assert throughput.scramble(html, 0) == html
    assert throughput.scramble(html, 3) == copy != throughput.scramble(html, 4)


def test_each_copy_claims_its_own_canonical_url():
    html = (b'<link rel="canonical" href="https://news.example/a?x=1">'
            b'<meta property="og:url" content="https://news.example/a"><link rel="stylesheet" href="s.css">')
    out = throughput.own_canonical(html, 7)
    assert b'href="https://news.example/a?x=1&copy=7"' in out
    assert b'content="https://news.example/a?copy=7"' in out
    assert b'href="s.css"' in out


def test_site_feeds_list_every_copy(tmp_path):
    pages = throughput.load_pages(3)
    feeds = throughput.write_site(tmp_path, pages, copies=2, feed_size=4)
    assert feeds == ["feeds/0.xml", "feeds/1.xml"]
    links = re.findall(r"<link>\{\{BASE_URL\}\}/(p/[^<]+)</link>", "".join((tmp_path / f).read_text() for f in feeds))
    assert sorted(links) == sorted(path for path, _ in throughput.site_pages(tmp_path))
    assert len(links) == 6


def test_replayed_site_rotates_entries(tmp_path):
    site = soak.ReplayedSite(tmp_path, throughput.load_pages(5), feeds=2, feed_size=3, per_round=4, repeats=1)
    site.publish_round()
    site.publish_round()
    text = "".join((tmp_path / f).read_text() for f in site.feed_paths)
    links = re.findall(r"<link>\{\{BASE_URL\}\}/(p/[^<]+)</link>", text)
    assert len(links) == 6  # 2 feeds x 3 entries: the oldest rolled off
    assert all(link.startswith("p/2/") for link in links[:1])
    assert "#again2" in text  # a recent link published again under a new GUID
    assert site.published == 8


def test_slope_and_plot():
    flat = [(m, 300.0 + (m % 2)) for m in range(20)]
    growing = [(m, 300.0 + 10 * m) for m in range(20)]
    assert abs(soak.slope_mb_per_h(flat)) < 5
    assert soak.slope_mb_per_h(growing) == pytest.approx(600.0)
    plot = soak.ascii_plot(growing, width=30, height=5, mark_x=10.5)
    assert plot.count("*") == 20  # one column per sample at this width
    rows = plot.splitlines()
    assert rows[0].lstrip().startswith("490 MB") and rows[4].lstrip().startswith("300 MB")
    marks = [row.split("MB |", 1)[1][16] for row in rows[:5]]  # minute 10.5 of 0..19 on 30 columns
    assert set(marks) <= {"|", "*"} and "|" in marks


def test_throughput_quick_run(kafka_broker):
    """--quick: six pages, the bare loop and the DirectRunner job once, the per-stage profile."""
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_broker.bootstrap}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _last_json(done.stdout)
    for key in ("bare_docs_per_s", "direct_docs_per_s", "parallel_docs_per_s", "direct_ratio", "parallel_ratio",
                "peak_rss_mb"):
        assert key in summary
    assert summary["docs"] == 6
    assert summary["bare_docs_per_s"] > 0 and summary["direct_docs_per_s"] > 0 and summary["peak_rss_mb"] > 0
    direct = summary["runs"]["direct"][0]
    assert direct["articles"] + direct["duplicates"] == 6
    # CPU after start-up is part of the whole run's; the last page is fetched within the work span
    assert 0 <= direct["work_cpu_s"]["job (python)"] <= direct["cpu_s"]["job (python)"]
    assert 0 <= direct["last_fetch_s"] <= direct["work_s"]
    assert {"fetch", "extract", "tag", "Kafka send"} <= set(summary["stage_ms_per_doc"])


@pytest.mark.streaming
def test_soak_short_run(kafka_broker, tmp_path):
    """A minute of the streaming job on Prism: samples taken, a CSV written, the JSON line printed."""
    prism = subprocess.run(["bash", str(REPO / "deploy" / "prism.sh"), "path"], capture_output=True, text=True)
    if prism.returncode or not os.access(prism.stdout.strip(), os.X_OK):
        pytest.skip("Prism is not installed (deploy/prism.sh install)")
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_broker.bootstrap}
    csv_path = tmp_path / "soak.csv"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--minutes", "1", "--ttl-min", "0.5",
                           "--settle-min", "0", "--round-s", "15", "--per-round", "3", "--sample-s", "5",
                           "--csv", str(csv_path)], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _last_json(done.stdout)
    assert summary["samples"] >= 5 and summary["peak_rss_mb"] > 0 and summary["published"] >= 6
    assert csv_path.read_text().startswith("minutes,rss_mb,")
    assert "MB |" in done.stdout
