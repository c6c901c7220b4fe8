"""Soak: the streaming job for a long while on a replayed feed set, memory sampled; flat once the TTL is reached.

A loopback site (``pipelines.demo.SampleServer``) publishes, every ``--round-s`` seconds, a new round
of articles: ``--per-round`` aeb-dev pages under new URLs, the copy number going up forever (copies
1.. have their letters substituted, see ``benchmarks/throughput.py``: distinct articles, the same
extraction work). They go to the top of ``--feeds`` RSS feeds of ``--feed-size`` entries, so old
entries roll off as new ones come in, and every round also re-publishes a few recent URLs under
fresh GUIDs (the link dedup must drop them). Pages that left every feed are deleted.

The job is ``newsingest run --streaming`` on Prism (LOOPBACK) against Kafka (``KAFKA_BOOTSTRAP``,
else a local broker started here), with the dedup TTL short (``--ttl-min``, default 5 minutes:
``ttl_days`` 0.0035) so that state stops growing within the run: from then on every article that
comes in is matched by one expiring, and memory should stay flat. Every ``--sample-s`` seconds the
resident memory of the job's process tree (the Python job with its SDK worker, and the Prism
runner) and the records on the topics are sampled; the samples are printed as a table and an ASCII
plot, written to ``--csv`` and, when matplotlib is importable, to a PNG beside it.

Beam's SDK worker caches state reads and writes in an LRU cache bounded by weight
(``--max_cache_memory_usage_mb``, 100 MB by default), keyed by state key and the cache token the
runner hands out. Prism hands out a new token per bundle, so every timer's read of the dedup step's
pending articles adds a copy of them (measured in this set-up: ~160 KB each, the cache filling by
~8 MB a minute at 1.5 articles/s, 26% hits) until the cap evicts the oldest: memory rises by the
cap's worth and then levels. The job runs with a small cache (``--state-cache-mb``, 8) so that this
happens within the warm-up; with 32 MB the same curve levels off about 16 minutes in. The job's
Python processes and the Prism runner are sampled apart.

The verdict compares the memory after warm-up (from ``TTL + --settle-min``) with a least-squares
slope: flat means it grows less than ``--flat-mb-per-h``.

Run: ``python benchmarks/soak.py [--minutes 30] [--ttl-min 5] [--csv soak.csv]``. Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import (_broker, job_config, load_pages, page_copy, rss, rss_mb_by_kind,  # noqa: E402
                        start_job, stop_group, topic_stats, TimedSite, Page, _title)

import datetime as dt  # noqa: E402


class ReplayedSite:
    """Feeds whose entries rotate: a new round of page copies on top, the oldest rolling off."""

    def __init__(self, root: Path, pages: list[Page], feeds: int, feed_size: int, per_round: int, repeats: int = 2):
        self.root, self.pages = root, pages
        self.feeds, self.feed_size, self.per_round, self.repeats = feeds, feed_size, per_round, repeats
        self.entries: list[tuple[str, str, str, dt.datetime]] = []  # (title, path, guid, published), newest first
        self.round = 0
        self.published = 0
        (root / "feeds").mkdir(parents=True, exist_ok=True)

    @property
    def feed_paths(self) -> list[str]:
        return [f"feeds/{n}.xml" for n in range(self.feeds)]

    def publish_round(self) -> None:
        """A new round: ``per_round`` new pages, and ``repeats`` recent links again under new GUIDs."""
        self.round += 1
        now = dt.datetime.now(dt.timezone.utc)
        folder = self.root / "p" / str(self.round)
        folder.mkdir(parents=True, exist_ok=True)
        start = (self.round - 1) * self.per_round
        new = []
        for i in range(self.per_round):
            page = self.pages[(start + i) % len(self.pages)]
            data = page_copy(page, start + i + 1)  # a copy number of its own: a distinct article
            (folder / f"{page.id}.html").write_bytes(data)
            path = f"p/{self.round}/{page.id}.html"
            new.append((_title(data), path, path, now))
        again = [(t, path, f"{path}#again{self.round}", now) for t, path, _, _ in self.entries[:self.repeats]]
        self.entries = new + again + self.entries
        self.published += len(new)
        capacity = self.feeds * self.feed_size
        self.entries = self.entries[:capacity]
        for n in range(self.feeds):
            items = [(t, path, when) for t, path, guid, when in self.entries[n::self.feeds]]
            guids = [guid for _, _, guid, _ in self.entries[n::self.feeds]]
            text = rss(f"Replay {n}", items)
            for (_, path, _), guid in zip(items, guids):  # rss() uses the path as GUID; repeats carry their own
                if guid != path:
                    text = text.replace(f'<guid isPermaLink="false">{path}</guid>',
                                        f'<guid isPermaLink="false">{guid}</guid>', 1)
            tmp = self.root / f"feeds/{n}.xml.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.root / f"feeds/{n}.xml")
        self._prune()

    def _prune(self) -> None:
        """Delete the folders of rounds none of whose pages is in a feed any more."""
        live = {path.split("/")[1] for _, path, _, _ in self.entries}
        for folder in (self.root / "p").iterdir():
            if folder.name not in live and int(folder.name) < self.round - 1:
                shutil.rmtree(folder, ignore_errors=True)


def _records(bootstrap: str, prefix: str) -> dict[str, int]:
    out = {}
    for role in ("articles", "duplicates", "deadletter"):
        try:
            out[role] = topic_stats(bootstrap, f"{prefix}.{role}")[0]
        except Exception:  # a topic not created yet, a slow broker: the next sample will tell
            out[role] = -1
    return out


def ascii_plot(points: list[tuple[float, float]], width: int = 72, height: int = 14, mark_x: Optional[float] = None) -> str:
    """A small plot of (minutes, MB) points; ``|`` marks ``mark_x`` (when the TTL was reached)."""
    if not points:
        return "(no samples)"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1.0
    y0, y1 = min(ys), max(ys)
    y0, y1 = (y0 - 1, y1 + 1) if y1 - y0 < 2 else (y0, y1)
    grid = [[" "] * width for _ in range(height)]
    if mark_x is not None and x0 <= mark_x <= x1:
        col = int((mark_x - x0) / max(x1 - x0, 1e-9) * (width - 1))
        for row in grid:
            row[col] = "|"
    for x, y in points:
        col = int((x - x0) / max(x1 - x0, 1e-9) * (width - 1))
        row = height - 1 - int((y - y0) / (y1 - y0) * (height - 1))
        grid[row][col] = "*"
    lines = []
    for i, row in enumerate(grid):
        label = y1 - i * (y1 - y0) / (height - 1)
        lines.append(f"{label:8.0f} MB |" + "".join(row))
    lines.append(" " * 12 + "+" + "-" * width)
    lines.append(" " * 12 + f"{x0:<8.1f}" + " " * (width - 16) + f"{x1:>8.1f} min")
    return "\n".join(lines)


def slope_mb_per_h(points: list[tuple[float, float]]) -> Optional[float]:
    """Least-squares slope of (minutes, MB), in MB per hour."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else None


def write_png(path: Path, rows: list[dict], ttl_min: float) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([r["minutes"] for r in rows], [r["rss_mb"] for r in rows], label="job process tree RSS (MB)")
    ax.axvline(ttl_min, linestyle="--", color="grey", label="dedup TTL")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MB")
    ax2 = ax.twinx()
    ax2.plot([r["minutes"] for r in rows], [r["articles"] + r["duplicates"] for r in rows], color="tab:orange",
             label="records written")
    ax2.set_ylabel("records")
    fig.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return True


def prism_args() -> list[str]:
    prism = subprocess.run(["bash", str(REPO / "deploy" / "prism.sh"), "path"], capture_output=True, text=True,
                           check=True).stdout.strip()
    return ["--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--ttl-min", type=float, default=5.0, help="dedup TTL in minutes (ttl_days = this / 1440)")
    parser.add_argument("--settle-min", type=float, default=2.0, help="minutes after the TTL before 'flat' is judged")
    parser.add_argument("--round-s", type=float, default=30.0, help="seconds between rounds of new articles")
    parser.add_argument("--per-round", type=int, default=15, help="new articles per round")
    parser.add_argument("--feeds", type=int, default=4)
    parser.add_argument("--feed-size", type=int, default=20)
    parser.add_argument("--poll-s", type=float, default=10.0, help="feed poll interval")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--flat-mb-per-h", type=float, default=50.0, help="growth after warm-up still called flat")
    parser.add_argument("--csv", default="soak.csv", help="samples written here (and a PNG beside it)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (job log, config, site)")
    parser.add_argument("--state-cache-mb", type=int, default=8,
                        help="the SDK worker's state cache (Beam's --max_cache_memory_usage_mb, 100 by default): an "
                             "LRU bounded by weight that fills with copies made under Prism's per-bundle cache tokens "
                             "before it evicts; a small one reaches its cap within the warm-up")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up: stop the job and the broker
    logging.basicConfig(level=logging.WARNING)

    workdir = Path(tempfile.mkdtemp(prefix="newsingest-soak-"))
    site_root = workdir / "site"
    site = ReplayedSite(site_root, load_pages(), args.feeds, args.feed_size, args.per_round)
    site.publish_round()
    rows: list[dict] = []
    reasons: dict[str, int] = {}
    prefix = f"soak{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    try:
        with _broker() as bootstrap, TimedSite(site_root) as server:
            config = job_config(workdir / "config.yaml", [f"{server.base_url}/{p}" for p in site.feed_paths],
                                bootstrap, prefix,
                                polling={"default_interval_s": args.poll_s, "min_interval_s": args.poll_s,
                                         "refresh_s": max(args.poll_s, 30.0)},
                                dedup={"ttl_days": round(args.ttl_min / 1440, 6)})
            log = workdir / "job.log"
            started = time.monotonic()
            proc = start_job(config, prism_args() + [f"--max_cache_memory_usage_mb={args.state_cache_mb}"], log,
                             streaming=True)

            def publisher():
                while not stop.wait(args.round_s):
                    site.publish_round()
            threading.Thread(target=publisher, daemon=True).start()
            print(f"{'min':>6} {'RSS MB':>8} {'job':>6} {'prism':>6} {'published':>9} {'articles':>8} {'dups':>5} "
                  f"{'dead':>5}", flush=True)
            try:
                while time.monotonic() - started < args.minutes * 60:
                    if proc.poll() is not None:
                        errors = [line for line in log.read_text(errors="replace").splitlines()
                                  if "ERROR" in line or "Error" in line][:20]
                        raise RuntimeError(f"the job exited ({proc.returncode}); see {log}; first errors:\n"
                                           + "\n".join(errors))
                    counts = _records(bootstrap, prefix)
                    job_mb, runner_mb = rss_split(proc.pid)
                    row = {"minutes": round((time.monotonic() - started) / 60, 2), "rss_mb": round(job_mb + runner_mb, 1),
                           "job_mb": round(job_mb, 1), "runner_mb": round(runner_mb, 1),
                           "published": site.published, "articles": counts["articles"],
                           "duplicates": counts["duplicates"], "dead_letters": counts["deadletter"]}
                    rows.append(row)
                    print(f"{row['minutes']:6.1f} {row['rss_mb']:8.0f} {row['job_mb']:6.0f} {row['runner_mb']:6.0f} "
                          f"{row['published']:9d} {row['articles']:8d} "
                          f"{row['duplicates']:5d} {row['dead_letters']:5d}", flush=True)
                    time.sleep(max(0.0, args.sample_s - (time.monotonic() - started) % args.sample_s))
            finally:
                stop.set()
                stop_group(proc)
            reasons = dead_letter_reasons(bootstrap, f"{prefix}.deadletter")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(rows, reasons, args)


def rss_split(root: int) -> tuple[float, float]:
    """(the job's Python processes, the Prism runner) resident MB of the job's process tree."""
    by_kind = rss_mb_by_kind([root])
    runner = by_kind.pop("prism", 0.0)
    return sum(by_kind.values()), runner


def dead_letter_reasons(bootstrap: str, topic: str) -> dict[str, int]:
    """How many dead letters of each stage and reason (its first words) the run wrote."""
    from collections import Counter

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        return dict(Counter(f"{d['stage']}: {' '.join(d['reason'].split()[:6])}"
                            for d in (json.loads(m.value) for m in consumer)))
    finally:
        consumer.close()


def report(rows: list[dict], reasons: dict[str, int], args) -> int:
    csv_path = Path(args.csv)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    png = csv_path.with_suffix(".png")
    plotted = write_png(png, rows, args.ttl_min)
    points = [(r["minutes"], r["rss_mb"]) for r in rows]
    running = [(r["minutes"], r["rss_mb"]) for r in rows if r["articles"] > 0] or points  # start-up squashes the scale
    print("\nmemory of the job's process tree from the first article written (| = dedup TTL reached)")
    print(ascii_plot(running, mark_x=args.ttl_min))
    warm = args.ttl_min + args.settle_min
    after = [p for p in points if p[0] >= warm]
    slope = slope_mb_per_h(after)
    parts = {part: slope_mb_per_h([(r["minutes"], r[f"{part}_mb"]) for r in rows if r["minutes"] >= warm])
             for part in ("job", "runner")}
    summary = {
        "minutes": args.minutes, "ttl_min": args.ttl_min, "state_cache_mb": args.state_cache_mb, "samples": len(rows),
        "published": rows[-1]["published"], "articles": rows[-1]["articles"], "duplicates": rows[-1]["duplicates"],
        "dead_letters": rows[-1]["dead_letters"],
        "peak_rss_mb": max(p[1] for p in points),
        "rss_at_warm_mb": after[0][1] if after else None, "rss_end_mb": points[-1][1],
        "max_after_warm_mb": max((p[1] for p in after), default=None),
        "slope_after_warm_mb_per_h": round(slope, 1) if slope is not None else None,
        "flat": slope is not None and slope < args.flat_mb_per_h,
        "slope_after_warm_mb_per_h_job": round(parts["job"], 1) if parts["job"] is not None else None,
        "slope_after_warm_mb_per_h_prism": round(parts["runner"], 1) if parts["runner"] is not None else None,
        "dead_letter_reasons": reasons, "csv": str(csv_path), "png": str(png) if plotted else None,
    }
    print(f"after warm-up ({warm:g} min): {summary['rss_at_warm_mb']} MB -> {summary['rss_end_mb']} MB, "
          f"slope {summary['slope_after_warm_mb_per_h']} MB/h: {'flat' if summary['flat'] else 'NOT flat'} "
          f"(the job's Python processes {summary['slope_after_warm_mb_per_h_job']} MB/h, "
          f"Prism {summary['slope_after_warm_mb_per_h_prism']} MB/h)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
