"""Helpers for the streaming tests: a feed that grows while the job runs, and a topic watcher."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import REPO

ITEM = """  <item>
    <title>{title}</title>
    <link>{{{{BASE_URL}}}}{path}</link>
    <guid isPermaLink="false">{guid}</guid>
    <pubDate>{date}</pubDate>
  </item>
"""

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Growing feed</title><link>{{{{BASE_URL}}}}/</link>
<description>A feed that gains entries while the job runs</description>
{items}</channel></rss>
"""

ENTRIES = {
    "ledger": ("Volodymyr Zelensky Admits Ukraine May Never Join NATO", "/ledger/zelensky-nato.html",
               "Wed, 16 Mar 2022 10:12:00 +0000"),
    "farm": ("Corn and soybean futures climb", "/farm/grain-prices.html", "Wed, 16 Mar 2022 20:05:00 +0000"),
    "summit": ("NATO leaders to meet in Brussels", "/wire/nato-summit.html", "Thu, 17 Mar 2022 08:00:00 +0000"),
    "reprint": ("Zelensky says Ukraine may never join NATO", "/wire/zelensky-nato-reprint.html",
                "Wed, 16 Mar 2022 13:40:00 +0000"),
}


class GrowingSite:
    """A copy of examples/site whose feed ``feeds/growing.xml`` the test extends."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copytree(REPO / "examples" / "site", root)
        self.keys: list[str] = []

    def publish(self, *keys: str) -> None:
        self.keys.extend(keys)
        items = "".join(ITEM.format(title=ENTRIES[k][0], path=ENTRIES[k][1], guid=k, date=ENTRIES[k][2])
                        for k in reversed(self.keys))
        tmp = self.root / "feeds" / "growing.xml.tmp"
        tmp.write_text(FEED.format(items=items), encoding="utf-8")
        os.replace(tmp, self.root / "feeds" / "growing.xml")


def write_config(path: Path, base_url: str, bootstrap: str, prefix: str, poll_s: float = 2.0) -> Path:
    config = {
        "feeds": [{"url": f"{base_url}/feeds/growing.xml", "name": "Growing"}],
        "kafka": {"bootstrap_servers": bootstrap, "create_topics": True, "partitions": 2,
                  "topics": {"articles": f"{prefix}.articles", "duplicates": f"{prefix}.duplicates",
                             "dead_letter": f"{prefix}.deadletter"}},
        "fetch": {"allow_hosts": ["127.0.0.1"], "per_host_min_delay_s": 0, "respect_robots": False},
        "polling": {"default_interval_s": poll_s, "min_interval_s": poll_s, "refresh_s": 5},
        "dedup": {"ttl_days": 7},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_job(config: Path, runner_args: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--streaming",
                             *runner_args], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)


def stop_job(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


class TopicWatcher:
    """Reads topics continuously from the beginning; ``wait_for`` polls until a predicate holds."""

    def __init__(self, bootstrap: str, topics: list[str]):
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      enable_auto_commit=False, metadata_max_age_ms=1000)
        self.consumer.subscribe(topics)
        self.records: dict[str, list[tuple[float, bytes, dict]]] = {t: [] for t in topics}

    def drain(self, timeout_ms: int = 500) -> None:
        for tp, msgs in self.consumer.poll(timeout_ms=timeout_ms).items():
            for m in msgs:
                self.records[tp.topic].append((time.monotonic(), m.key, json.loads(m.value)))

    def wait_for(self, predicate, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.drain()
            if predicate(self.records):
                return True
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace")[-4000:] if log else ""
                raise AssertionError(f"the streaming job exited early ({proc.returncode}):\n{tail}")
        return False

    def close(self):
        self.consumer.close()
