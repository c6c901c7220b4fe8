"""Throughput of the whole job against plain trafilatura on the same pages, measured in one run.

Extraction is the work; everything around it should cost little. This serves the aeb-dev pages
(../shared/data/extraction/aeb-dev when present, else benchmarks/data/extraction/aeb-dev) through
RSS feeds on a loopback HTTP server and measures, in alternating rounds (medians count; the
machine may be shared):

(a) ``bare``: a loop of ``trafilatura.extract(html, url=url)`` (its defaults) over the very bytes
    the server serves, in a process of its own;
(b) ``direct``: the whole job (``newsingest run``: poll, fetch, extract and clean, dedup, tag,
    Kafka) on the DirectRunner with one worker;
(c) ``parallel``: the whole job with parallelism 2. ``--parallel`` picks the runner set-up:
    ``flink`` (default): embedded Flink (``--flink_master=[local]``), ``--parallelism=2``, SDK
    workers from a Beam worker pool (EXTERNAL environment, ``--sdk_worker_parallelism=2``): two
    worker processes, two cores. ``prism``: Prism with LOOPBACK, where all user code runs in the
    job's one Python process (Prism starts one SDK worker per environment), so it is GIL-bound:
    shown for comparison. ``flink-loopback``: Flink with LOOPBACK, likewise one Python process.

Start-up is amortised by size and also reported apart: every page is published ``--copies`` times
under its own URL and rel=canonical (910 documents by default), copies 1.. with the letters of
their text substituted so they are distinct articles to dedup while the extraction work stays that
of the real page (see :func:`scramble`). Each job's docs/s is given twice: over its whole life
(process start to exit, interpreter and runner start-up included), and over its work span (the
server's first feed request to the newest record on the topics).

Memory is the peak resident set of the job's process tree (the job, the runner binary or JVM it
starts, its SDK workers and the worker pool), sampled every 0.25 s. Where the time goes: each
stage's function timed alone on the same pages, in a process of its own (``--profile-docs``):
poll, fetch, extract (split into its steps), record, dedup (sign, judge), tag, encode, Kafka send;
what the direct job spends beyond their sum is the runner's (encoding between stages, state,
shuffles).

The broker is ``KAFKA_BOOTSTRAP`` when set, else a local one started here (deploy/kafka/kafka.sh)
and stopped at the end. Needs Prism (``deploy/prism.sh``) for ``--parallel prism`` and the Flink
job-server jar (``deploy/flink/job-server-jar.sh``) for ``flink``.

Run: ``python benchmarks/throughput.py [--copies 10] [--repeat 3] [--parallel flink,prism]``;
``--quick`` is a smoke run (a few pages, one round, no parallel job). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import nullcontext
from email.utils import format_datetime
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional, Sequence
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from pipelines.demo import SampleServer  # noqa: E402

AEB_DEV = [REPO.parent / "shared" / "data" / "extraction" / "aeb-dev",
           REPO / "benchmarks" / "data" / "extraction" / "aeb-dev"]
EMBEDDED_FLINK_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
DIRECT_ARGS = ["--runner=DirectRunner", "--direct_num_workers=1", "--direct_running_mode=in_memory"]
JOB_TIMEOUT_S = 1800

# ---- the corpus ------------------------------------------------------------------------------


class Page(NamedTuple):
    id: str
    html: bytes
    url: Optional[str]


def load_pages(limit: Optional[int] = None) -> list[Page]:
    """The aeb-dev pages as bytes, sorted by id; ../shared first, the bundled copy otherwise."""
    folder = next(f for f in AEB_DEV if (f / "ground-truth.json").exists())
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id, item in sorted(truth.items())[:limit]:
        gz, plain = folder / "html" / f"{page_id}.html.gz", folder / "html" / f"{page_id}.html"
        pages.append(Page(page_id, gzip.decompress(gz.read_bytes()) if gz.exists() else plain.read_bytes(),
                          item.get("url")))
    return pages


# markup, scripts, styles, comments and entities pass through; only the text between them changes
_NOT_TEXT = re.compile(rb"<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->|<[^>]*>|&#?\w+;",
                       re.S | re.I)
_CANONICAL = re.compile(rb"<(?:link|meta)\b[^>]*(?:canonical|og:url)[^>]*>", re.I)
_URL_VALUE = re.compile(rb"""((?:href|content)\s*=\s*["'])([^"']*)""", re.I)
_VOWELS, _CONSONANTS = "aeiou", "bcdfghjklmnpqrstvwxyz"


def _substitution(copy: int) -> bytes:
    """A byte translation table: vowels among vowels, consonants among consonants, case kept."""
    rng = random.Random(copy)
    vowels, consonants = list(_VOWELS), list(_CONSONANTS)
    rng.shuffle(vowels)
    rng.shuffle(consonants)
    table = bytearray(range(256))
    for a, b in zip(_VOWELS + _CONSONANTS, "".join(vowels) + "".join(consonants)):
        table[ord(a)], table[ord(a.upper())] = ord(b), ord(b.upper())
    return bytes(table)


def scramble(html: bytes, copy: int) -> bytes:
    """``html`` with the letters of its visible text substituted (copy 0: unchanged).

    Markup, text lengths and word shapes stay, so trafilatura does the same work and finds the
    same text, letter for letter substituted; MinHash shingles differ, so copies are distinct."""
    if copy == 0:
        return html
    table = _substitution(copy)
    out, pos = [], 0
    for m in _NOT_TEXT.finditer(html):
        out += [html[pos:m.start()].translate(table), m.group()]
        pos = m.end()
    out.append(html[pos:].translate(table))
    return b"".join(out)


def own_canonical(html: bytes, copy: int) -> bytes:
    """Every rel=canonical / og:url of the page made this copy's own (``?copy=k`` appended)."""
    def fix_tag(tag: re.Match) -> bytes:
        def fix_url(m: re.Match) -> bytes:
            url = m.group(2)
            return m.group(1) + url + (b"&" if b"?" in url else b"?") + b"copy=%d" % copy if url else m.group()
        return _URL_VALUE.sub(fix_url, tag.group())
    return _CANONICAL.sub(fix_tag, html)


def page_copy(page: Page, copy: int) -> bytes:
    return own_canonical(scramble(page.html, copy), copy)


def _title(html: bytes) -> str:
    m = re.search(rb"<title[^>]*>(.*?)</title", html, re.S | re.I)
    return " ".join(m.group(1).decode("utf-8", "replace").split())[:200] if m else "untitled"


_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>{title}</title><link>{{{{BASE_URL}}}}/</link>
<description>Replayed aeb-dev pages</description>
{items}</channel></rss>
"""
_ITEM = """<item><title>{title}</title><link>{{{{BASE_URL}}}}/{path}</link><guid isPermaLink="false">{guid}</guid>
<pubDate>{date}</pubDate></item>
"""


def rss(title: str, entries: Iterable[tuple[str, str, dt.datetime]]) -> str:
    """An RSS 2.0 feed of (title, path, published) entries; links are ``{{BASE_URL}}/path``."""
    items = "".join(_ITEM.format(title=escape(t), path=path, guid=path, date=format_datetime(when))
                    for t, path, when in entries)
    return _RSS.format(title=escape(title), items=items)


def write_copies(root: Path, pages: Sequence[Page], copies: Iterable[int]) -> list[tuple[str, str, dt.datetime]]:
    """Write ``p/<copy>/<id>.html`` for each copy; return their feed entries (title, path, published)."""
    entries = []
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for copy in copies:
        folder = root / "p" / str(copy)
        folder.mkdir(parents=True, exist_ok=True)
        for i, page in enumerate(pages):
            data = page_copy(page, copy)
            (folder / f"{page.id}.html").write_bytes(data)
            entries.append((_title(data), f"p/{copy}/{page.id}.html",
                            base + dt.timedelta(minutes=copy * len(pages) + i)))
    return entries


def write_site(root: Path, pages: Sequence[Page], copies: int, feed_size: int = 50) -> list[str]:
    """Copies 0..copies-1 of ``pages`` and feeds of ``feed_size`` entries; returns the feed paths.

    Entries are dealt to the feeds copy by copy, so each feed mixes publishers as an aggregator's would.
    """
    entries = write_copies(root, pages, range(copies))
    (root / "feeds").mkdir(parents=True, exist_ok=True)
    feeds = []
    for n in range(0, len(entries), feed_size):
        path = f"feeds/{n // feed_size}.xml"
        (root / path).write_text(rss(f"Feed {n // feed_size}", entries[n:n + feed_size]), encoding="utf-8")
        feeds.append(path)
    return feeds


def site_pages(root: Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of every page under ``root``, in a stable order."""
    return [(str(p.relative_to(root)), p.read_bytes()) for p in sorted((root / "p").glob("*/*.html"))]


# ---- the harness: server, config, process trees, worker pool, topics ---------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TimedSite(SampleServer):
    """SampleServer noting the wall-clock time of its first and last request, and counting them."""

    def __init__(self, root: Path):
        super().__init__(root=root)
        self.reset()
        site, base = self, self.httpd.RequestHandlerClass

        class Timed(base):
            def do_GET(self):
                now = time.time()
                site.first_hit = site.first_hit or now
                site.last_hit = now
                site.hits += 1
                super().do_GET()

        self.httpd.RequestHandlerClass = Timed

    def reset(self) -> None:
        self.first_hit: Optional[float] = None
        self.last_hit: Optional[float] = None
        self.hits = 0


def job_config(path: Path, feed_urls: Sequence[str], bootstrap: str, prefix: str, concurrency: int = 8,
               **sections) -> Path:
    """Write a job config: the feeds, fresh topics ``<prefix>.*``, fetch settings for one loopback host."""
    config = {
        "feeds": [{"url": url, "name": f"Replay {i}"} for i, url in enumerate(feed_urls)],
        "kafka": {"bootstrap_servers": bootstrap, "create_topics": True, "partitions": 2,
                  "topics": {"articles": f"{prefix}.articles", "duplicates": f"{prefix}.duplicates",
                             "dead_letter": f"{prefix}.deadletter"}},
        # one loopback host serves every page: no politeness delay, robots.txt off, the host allowed
        "fetch": {"allow_hosts": ["127.0.0.1"], "per_host_min_delay_s": 0, "per_host_concurrency": concurrency,
                  "respect_robots": False},
        **sections,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pids(roots: Sequence[int]) -> set[int]:
    """``roots`` and all their descendants."""
    tree, seen, stack = _children(), set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(tree.get(pid, ()))
    return seen


def rss_mb_by_kind(roots: Sequence[int]) -> dict[str, float]:
    """Resident MB of ``roots`` and all their descendants, by what each process is (see _process_kind)."""
    out: dict[str, float] = {}
    for pid in tree_pids(roots):
        kind = _process_kind(pid)
        out[kind] = out.get(kind, 0.0) + _rss_kb(pid) / 1024
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def _process_kind(pid: int) -> str:
    """What a process of the job's tree is: the runner binary, a JVM, an SDK worker, the job itself."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "prism" in cmd.split(" ", 1)[0]:
        return "prism"
    if "java" in cmd.split(" ", 1)[0]:
        return "jvm"
    if "SdkHarness" in cmd or "sdk_worker" in cmd:
        return "sdk worker"
    if "worker_pool_main" in cmd:
        return "worker pool"
    return "job (python)"


def _cpu_s(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


class RssSampler:
    """Samples the RSS of process trees every ``interval_s`` in a thread: (elapsed s, MB) pairs.

    Also keeps each process's latest CPU time, so :meth:`cpu_by_kind` tells where the cores went;
    with ``work_started`` (true once the job's work began) also how much of it went after start-up.
    """

    def __init__(self, roots: Sequence[int], interval_s: float = 0.25,
                 work_started: Optional[Callable[[], bool]] = None):
        self.roots = list(roots)
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._cpu: dict[int, tuple[str, float]] = {}
        self._work_started = work_started
        self.cpu_at_work_start: Optional[dict[str, float]] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = tree_pids(self.roots)
            self.samples.append((time.monotonic() - self._started, sum(_rss_kb(pid) for pid in pids) / 1024))
            for pid in pids:
                cpu = _cpu_s(pid)
                if cpu is not None:
                    kind = self._cpu[pid][0] if pid in self._cpu else _process_kind(pid)
                    self._cpu[pid] = (kind, cpu)
            if self.cpu_at_work_start is None and self._work_started and self._work_started():
                self.cpu_at_work_start = self.cpu_by_kind()
            self._stop.wait(self.interval_s)

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process (as last sampled; a process's final moments are missed)."""
        out: dict[str, float] = {}
        for kind, cpu in self._cpu.values():
            out[kind] = out.get(kind, 0.0) + cpu
        return out

    def work_cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process from the start of the work (a sample late) to the end."""
        start = self.cpu_at_work_start or {}
        return {kind: cpu - start.get(kind, 0.0) for kind, cpu in self.cpu_by_kind().items()}

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)


def stop_group(proc: Optional[subprocess.Popen], timeout: float = 20) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started."""

    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class WorkerPool:
    """A Beam worker pool for the EXTERNAL environment, in its own process group.

    Each SDK worker it starts is a process of its own (``python -c ... SdkHarness``): N workers can
    use N cores, where LOOPBACK runs every bundle in the job's own Python process.
    """

    def __init__(self, log: Path):
        self.port = free_port()
        self.log = log
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def __enter__(self) -> "WorkerPool":
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # its `python`: ours
        self.proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                      f"--service_port={self.port}"], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the worker pool did not start; see {self.log}")

    def __exit__(self, *exc) -> None:
        stop_group(self.proc)


def start_job(config: Path, beam_args: Sequence[str], log: Path, streaming: bool = False,
              metrics: Optional[Path] = None) -> subprocess.Popen:
    """``python -m pipelines.cli run`` in its own process group, its output to ``log``."""
    args = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--sink", "kafka",
            *(["--metrics-json", str(metrics)] if metrics else []), *(["--streaming"] if streaming else []),
            *beam_args]
    return subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)


def topic_stats(bootstrap: str, topic: str) -> tuple[int, Optional[float]]:
    """(records on ``topic``, the newest record's timestamp in epoch seconds, or None)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return 0, None
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        for tp in parts:
            if ends[tp]:
                consumer.seek(tp, ends[tp] - 1)
        newest, pending = None, {tp for tp in parts if ends[tp]}
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                newest = max([newest or 0.0] + [m.timestamp / 1000 for m in msgs])
                pending.discard(tp)
        return sum(ends.values()), newest
    finally:
        consumer.close()


def runner_args(kind: str) -> tuple[list[str], bool]:
    """(Beam options, needs a worker pool) of a parallel set-up."""
    if kind == "prism":
        prism = subprocess.run(["bash", str(REPO / "deploy" / "prism.sh"), "path"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return ["--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK"], False
    jar = subprocess.run(["bash", str(REPO / "deploy" / "flink" / "job-server-jar.sh")], capture_output=True,
                         text=True, check=True).stdout.strip()
    # The embedded Flink runs in the job server's JVM, on the cores the Python workers need: the
    # client JIT alone and the serial collector keep its compiler and GC threads off them (its CPU
    # after start-up fell from ~10 to ~4 ms per document; start-up is also shorter).
    flink = ["--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
             f"--flink_job_server_jar={jar}", "--parallelism=2",
             *(f"--job_server_jvm_property={flag}" for flag in EMBEDDED_FLINK_JVM)]
    if kind == "flink-loopback":
        return flink + ["--environment_type=LOOPBACK"], False
    if kind == "flink":
        return flink + ["--environment_type=EXTERNAL", "--sdk_worker_parallelism=2"], True
    raise ValueError(f"unknown parallel set-up {kind!r}: flink, flink-loopback or prism")


# ---- the measured runs -----------------------------------------------------------------------


def run_pipeline(name: str, beam_args: Sequence[str], pool: bool, site: TimedSite, feed_urls: Sequence[str],
                 bootstrap: str, workdir: Path, docs: int) -> dict:
    """One whole job to completion: its docs/s with and without start-up, peak RSS, what landed where."""
    prefix = f"tp{uuid.uuid4().hex[:10]}"
    config = job_config(workdir / f"{prefix}.yaml", feed_urls, bootstrap, prefix)
    log = workdir / f"{prefix}.{name}.log"
    site.reset()
    with (WorkerPool(workdir / f"{prefix}.pool.log") if pool else nullcontext()) as workers:
        args = list(beam_args) + ([f"--environment_config={workers.address}"] if workers else [])
        started = time.time()
        metrics = workdir / f"{prefix}.metrics.json"
        proc = start_job(config, args, log, metrics=metrics)
        roots = [proc.pid] + ([workers.proc.pid] if workers else [])
        with RssSampler(roots, work_started=lambda: site.first_hit is not None) as rss:
            try:
                rc = proc.wait(JOB_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                stop_group(proc)
                rc = "timeout"
        ended = time.time()
    if rc != 0:
        raise RuntimeError(f"{name} job failed ({rc}); see {log}:\n{log.read_text(errors='replace')[-3000:]}")
    landed = {role: topic_stats(bootstrap, f"{prefix}.{role}") for role in ("articles", "duplicates", "deadletter")}
    newest = max(t for _, t in landed.values() if t) if any(t for _, t in landed.values()) else ended
    work_s = max(newest - (site.first_hit or started), 1e-3)
    return {"docs_per_s": docs / (ended - started), "work_docs_per_s": docs / work_s,
            "wall_s": ended - started, "startup_s": (site.first_hit or started) - started, "work_s": work_s,
            "last_fetch_s": (site.last_hit or started) - (site.first_hit or started),
            "peak_rss_mb": rss.peak_mb, "cpu_s": {k: round(v, 1) for k, v in rss.cpu_by_kind().items()},
            "work_cpu_s": {k: round(v, 1) for k, v in rss.work_cpu_by_kind().items()},
            "articles": landed["articles"][0], "duplicates": landed["duplicates"][0],
            "dead_letters": landed["deadletter"][0], "requests": site.hits,
            "step_msecs": json.loads(metrics.read_text())["step_msecs"] if metrics.exists() else {}}


def run_bare(root: Path, base_url: str, workdir: Path) -> dict:
    """(a) in a process of its own: trafilatura.extract over the served bytes, peak RSS sampled."""
    out = workdir / f"bare-{uuid.uuid4().hex[:6]}.json"
    started = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "--bare-loop", str(root), base_url, str(out)], cwd=REPO)
    with RssSampler([proc.pid]) as rss:
        if proc.wait(JOB_TIMEOUT_S) != 0:
            raise RuntimeError("the bare trafilatura loop failed")
    ended = time.time()
    result = json.loads(out.read_text())
    return {"docs_per_s": result["docs"] / (ended - started), "work_docs_per_s": result["docs"] / result["seconds"],
            "wall_s": ended - started, "startup_s": ended - started - result["seconds"], "work_s": result["seconds"],
            "peak_rss_mb": rss.peak_mb, "cpu_s": {k: round(v, 1) for k, v in rss.cpu_by_kind().items()}}


def bare_loop(root: Path, base_url: str, out: Path) -> None:
    """The baseline: a bare loop of trafilatura.extract (its defaults) over the same HTML bytes."""
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    import trafilatura

    pages = site_pages(root)
    started = time.perf_counter()
    for path, html in pages:
        trafilatura.extract(html, url=f"{base_url}/{path}")
    out.write_text(json.dumps({"docs": len(pages), "seconds": time.perf_counter() - started}))


# ---- where the time goes ---------------------------------------------------------------------


class _Clock:
    """Wraps functions so that their time accumulates under a stage name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)
        setattr(owner, attr, timed)

    def time(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(name, time.perf_counter() - start)


def profile_stages(base_url: str, feed_paths: Sequence[str], limit: int, bootstrap: str, out: Path) -> None:
    """Each stage's function on the same pages, one after the other as the job runs them, timed apart.

    Runs in a process of its own; extract_article's steps are timed by wrapping the functions it
    calls (parse, metadata, DOM pre-pass, trafilatura, text post-pass), so its code is what runs.
    """
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    import trafilatura
    from kafka import KafkaProducer

    from connectors.feeds import parse_feed
    from connectors.fetch import Fetcher
    from connectors.kafka_admin import ensure_topics
    from connectors.kafka_sink import producer_config
    from pipelines import boilerplate, dedup as dd, extract
    from pipelines.config import load_config
    from pipelines.extract import extract_article
    from pipelines.ingest import build_record
    from pipelines.tag import tag_article, default_taxonomy
    from schemas.wire import ARTICLE

    prefix = f"tp{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(str(job_config(Path(tmp) / "c.yaml", [f"{base_url}/{p}" for p in feed_paths],
                                            bootstrap, prefix)))
    clock = _Clock()
    fetcher = Fetcher(config.fetch)
    entries = []
    for feed in config.feeds:
        resp = clock.time("poll feeds", fetcher.get, feed["url"], kind="feed")
        entries += clock.time("poll feeds", parse_feed, resp.body, resp.url, resp.headers)["entries"]
        if len(entries) >= limit:
            break
    entries = entries[:limit]
    for owner, attr, name in ((boilerplate, "parse_html", "extract: parse"),
                              (extract, "_page_metadata", "extract: metadata"),
                              (boilerplate, "prune_dom", "extract: DOM pre-pass"),
                              (trafilatura, "bare_extraction", "extract: trafilatura"),
                              (extract, "_restore_subheadings", "extract: text post-pass"),
                              (boilerplate, "clean_text", "extract: text post-pass")):
        clock.wrap(owner, attr, name)
    taxonomy, hasher, index = default_taxonomy(), dd.MinHasher(config.dedup), dd.Index(config.dedup)
    ensure_topics(config.kafka, [config.topics["articles"]])
    producer = KafkaProducer(**producer_config(config.kafka))
    producer.partitions_for(config.topics["articles"])
    for entry in entries:
        resp = clock.time("fetch", fetcher.get, entry["link"], kind="page")
        page = {"entry": entry, "url": resp.url, "body": resp.body, "fetched_at": "2024-01-01T00:00:00+00:00"}
        extracted = clock.time("extract", extract_article, resp.body, resp.url)
        record = clock.time("build record", build_record, page, extracted)
        text = record["text"]
        start = time.perf_counter()
        sig, chash, n_tokens = hasher.fingerprint(text)
        m = dd.member(record["id"], len(index), sig, chash, n_tokens, config.dedup)
        sig.digest()
        clock.add("dedup: sign", time.perf_counter() - start)
        _, m = clock.time("dedup: judge", index.judge, m)
        index.add(m)
        record["topics"] = clock.time("tag", tag_article, record["title"], text, taxonomy, record["lead"])
        key, value, headers = clock.time("encode (JSON)", ARTICLE, record)
        clock.time("Kafka send", producer.send, config.topics["articles"], key=key, value=value, headers=headers)
    clock.time("Kafka send", producer.flush)
    producer.close()
    # the same pages through plain trafilatura with the project's settings, for reference
    for entry in entries[: min(len(entries), 91)]:
        resp = fetcher.get(entry["link"], kind="page")
        clock.time("ref: trafilatura.extract, project settings", trafilatura.extract, resp.body, url=resp.url,
                   **extract.TRAFILATURA_OPTIONS)
    ref = min(len(entries), 91)
    ms = {name: s * 1000 / (ref if name.startswith("ref:") else len(entries)) for name, s in clock.seconds.items()}
    out.write_text(json.dumps({"docs": len(entries), "ms_per_doc": ms}))


def run_profile(base_url: str, feed_paths: Sequence[str], limit: int, bootstrap: str, workdir: Path) -> dict:
    out = workdir / "stages.json"
    subprocess.run([sys.executable, __file__, "--stage-profile", base_url, json.dumps(list(feed_paths)), str(limit),
                    bootstrap, str(out)], cwd=REPO, check=True)
    return json.loads(out.read_text())


# ---- main ------------------------------------------------------------------------------------


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _broker():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from kafka_sink import broker  # the kafka sink benchmark's: KAFKA_BOOTSTRAP, else a local one

    return broker()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="copies of each page (91 pages each)")
    parser.add_argument("--pages", type=int, help="use only the first N pages")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians count")
    parser.add_argument("--parallel", default="flink", help="comma-separated: flink, flink-loopback, prism; "
                                                            "the first is (c); 'none' skips")
    parser.add_argument("--feed-size", type=int, default=50)
    parser.add_argument("--profile-docs", type=int, default=182, help="documents in the per-stage profile (0: skip)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 pages, 1 copy, 1 round, no parallel job")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up: stop the job and the broker
    if args.quick:
        args.pages, args.copies, args.repeat, args.parallel, args.profile_docs = 6, 1, 1, "none", 6
    parallel = [p for p in args.parallel.split(",") if p and p != "none"]
    setups = {kind: runner_args(kind) for kind in parallel}
    logging.basicConfig(level=logging.WARNING)

    workdir = Path(tempfile.mkdtemp(prefix="newsingest-throughput-"))
    root = workdir / "site"
    pages = load_pages(args.pages)
    feed_paths = write_site(root, pages, args.copies, args.feed_size)
    docs = len(pages) * args.copies
    print(f"{docs} documents ({len(pages)} pages x {args.copies} copies) in {len(feed_paths)} feeds; "
          f"work directory {workdir}", file=sys.stderr)
    runs: dict[str, list[dict]] = {"bare": [], "direct": [], **{kind: [] for kind in parallel}}
    try:
        with _broker() as bootstrap, TimedSite(root) as site:
            feed_urls = [f"{site.base_url}/{p}" for p in feed_paths]
            for round_ in range(1, args.repeat + 1):
                for name in runs:
                    if name == "bare":
                        result = run_bare(root, site.base_url, workdir)
                    else:
                        beam_args, pool = (DIRECT_ARGS, False) if name == "direct" else setups[name]
                        result = run_pipeline(name, beam_args, pool, site, feed_urls, bootstrap, workdir, docs)
                    runs[name].append(result)
                    job = "articles" in result
                    extra = (f", {result['articles']}+{result['duplicates']} records, {result['dead_letters']} dead"
                             if job else "")
                    span = (f"; work {result['work_s']:.1f} s, last page fetched at {result['last_fetch_s']:.1f} s"
                            if job else "")
                    cpu = ", ".join(f"{k} {v:.0f}" + (f" ({result['work_cpu_s'][k]:.0f} after start-up)"
                                                         if k in result.get("work_cpu_s", {}) else "")
                                    for k, v in sorted(result["cpu_s"].items()))
                    print(f"round {round_} {name:<15} {result['docs_per_s']:6.1f} docs/s whole run, "
                          f"{result['work_docs_per_s']:6.1f} without start-up ({result['startup_s']:.1f} s{span}), "
                          f"peak {result['peak_rss_mb']:.0f} MB{extra}; CPU s: {cpu}", file=sys.stderr)
            stages = run_profile(site.base_url, feed_paths, min(args.profile_docs, docs), bootstrap, workdir) \
                if args.profile_docs else None
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(runs, stages, parallel, docs, args)
    return 0


def report(runs: dict[str, list[dict]], stages: Optional[dict], parallel: list[str], docs: int, args) -> None:
    bare = _median(runs["bare"], "work_docs_per_s")
    print(f"\nthroughput, {docs} documents, median of {args.repeat} alternating round(s); "
          f"ratios to (a) without start-up")
    print(f"{'':28} {'docs/s':>8} {'ratio':>6} {'w/ start-up':>12} {'start-up s':>11} {'peak RSS MB':>12}")
    labels = {"bare": "(a) bare trafilatura", "direct": "(b) DirectRunner, 1 worker"}
    for i, kind in enumerate(parallel):
        labels[kind] = f"{'(c)' if i == 0 else '   '} {kind}, parallelism 2"
    for name, results in runs.items():
        rate = _median(results, "work_docs_per_s")
        print(f"{labels[name]:28} {rate:8.1f} {rate / bare:6.2f} {_median(results, 'docs_per_s'):12.1f} "
              f"{_median(results, 'startup_s'):11.1f} {max(r['peak_rss_mb'] for r in results):12.0f}")
    direct = _median(runs["direct"], "work_docs_per_s")
    if stages:
        print(f"\nwhere the time goes: each stage alone on {stages['docs']} documents, ms per document")
        total = sum(v for k, v in stages["ms_per_doc"].items() if not k.startswith(("ref:", "extract:")))
        for name, ms in stages["ms_per_doc"].items():
            share = "" if name.startswith("ref:") else f"{100 * ms / (1000 / direct):5.1f}%"
            print(f"  {name:44} {ms:7.2f} {share}")
        print(f"  {'sum of the stages':44} {total:7.2f} {100 * total / (1000 / direct):5.1f}%")
        print(f"  {'(b) per document (runner and the rest)':44} {1000 / direct:7.2f} "
              f"(runner {1000 / direct - total:.2f})")
    steps = runs["direct"][0].get("step_msecs") or {}
    if steps:
        print("\nwhere the time goes in the job itself (round 1, the DirectRunner's timers of each step's DoFn), "
              "ms per document")
        for name, ms in list(steps.items())[:8]:
            print(f"  {name:60} {ms / docs:7.2f}")
        busy = sum(steps.values()) / docs
        print(f"  {'all steps':60} {busy:7.2f}")
        print(f"  {'(b) per document; the rest is the runner and start-up':60} "
              f"{1000 / runs['direct'][0]['work_docs_per_s']:7.2f}")
    summary = {
        "docs": docs, "copies": args.copies, "repeat": args.repeat, "cpus": os.cpu_count(),
        "bare_docs_per_s": round(bare, 1), "direct_docs_per_s": round(direct, 1),
        "direct_ratio": round(direct / bare, 3),
        "direct_docs_per_s_with_startup": round(_median(runs["direct"], "docs_per_s"), 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for rs in runs.values() for r in rs)),
        "runs": {name: [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items() if k != "step_msecs"}
                        for r in results] for name, results in runs.items()},
        "direct_step_ms_per_doc": {k: round(v / docs, 3) for k, v in steps.items()},
    }
    if parallel:
        rate = _median(runs[parallel[0]], "work_docs_per_s")
        summary.update(parallel_setup=parallel[0], parallel_docs_per_s=round(rate, 1),
                       parallel_ratio=round(rate / bare, 3),
                       parallel_docs_per_s_with_startup=round(_median(runs[parallel[0]], "docs_per_s"), 1))
    else:
        summary.update(parallel_setup=None, parallel_docs_per_s=None, parallel_ratio=None)
    if stages:
        summary["stage_ms_per_doc"] = {k: round(v, 3) for k, v in stages["ms_per_doc"].items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-loop":
        bare_loop(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--stage-profile":
        profile_stages(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5], Path(sys.argv[6]))
    else:
        sys.exit(main())
