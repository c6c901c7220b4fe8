"""Feed connector speed: feeds parsed per second and polls per second against a local server.

  python benchmarks/feeds.py [--rounds N] [--polls N]

Parsing: every file of the feedparser corpus and the real-world snapshots through
``connectors.feeds.parse_feed``, next to the baseline of bare ``feedparser.parse`` on the same
bytes and headers (what parse_feed adds: charset settling, normalisation, JSON Feed, sitemaps).
Polling: ``connectors.polling.poll_once`` (safe fetch + parse + state) against a threaded HTTP
server on 127.0.0.1 serving the real-world snapshots with ETags, once answering 200 every time and
once with 304s, next to the baseline of ``urllib.request`` + ``feedparser.parse`` with no guards.
Politeness (per-host delay) is off here: it would measure the sleep. The data comes from
../shared/data/feeds when present, else from tests/data/feeds. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import http.server
import json
import platform
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import feedparser  # noqa: E402

from connectors.feeds import FeedParseError, parse_feed  # noqa: E402
from connectors.fetch import Fetcher, FetchPolicy  # noqa: E402
from connectors.hostlimit import HostLimiter  # noqa: E402
from connectors.polling import FeedState, PollPolicy, poll_once  # noqa: E402


def data_dir() -> Path:
    shared = REPO.parent / "shared" / "data" / "feeds"
    return shared if (shared / "feedparser-corpus" / "INDEX.csv").exists() else REPO / "tests" / "data" / "feeds"


def load_documents(root: Path) -> list[tuple[bytes, dict]]:
    docs = []
    with open(root / "feedparser-corpus" / "INDEX.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            headers = {k.lower(): v for k, v in json.loads(row["http_headers"] or "{}").items()}
            docs.append(((root / "feedparser-corpus" / row["path"]).read_bytes(), headers))
    for item in json.loads((root / "realworld" / "MANIFEST.json").read_text(encoding="utf-8")):
        docs.append(((root / "realworld" / item["file"]).read_bytes(), {}))
    return docs


def time_parsing(docs, rounds: int) -> dict:
    def ours(body, headers):
        try:
            return len(parse_feed(body, "http://example.test/feed", headers)["entries"])
        except FeedParseError:
            return 0

    def baseline(body, headers):
        return len(feedparser.parse(body, response_headers=headers).entries)

    figures = {}
    for name, fn in (("baseline_feedparser", baseline), ("connector", ours)):
        best = float("inf")
        entries = 0
        for _ in range(rounds):
            started = time.perf_counter()
            entries = sum(fn(body, headers) for body, headers in docs)
            best = min(best, time.perf_counter() - started)
        figures[name] = {"feeds_per_s": round(len(docs) / best, 1), "entries_per_s": round(entries / best, 1),
                         "mb_per_s": round(sum(len(b) for b, _ in docs) / best / 1e6, 2), "entries": entries}
    return figures


class FeedServer:
    """Serves the real-world snapshots with ETags; ``conditional`` decides whether 304s are given."""

    def __init__(self, files: dict[str, bytes]):
        self.conditional = True
        etags = {path: '"%s"' % hashlib.sha1(body).hexdigest()[:16] for path, body in files.items()}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.conditional and self.headers.get("If-None-Match") == etags[self.path]:
                    self.send_response(304)
                    self.send_header("ETag", etags[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("ETag", etags[self.path])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"


def time_polling(root: Path, polls: int) -> dict:
    files = {"/" + p.name: p.read_bytes() for p in sorted((root / "realworld").iterdir())
             if p.suffix in (".rss", ".atom", ".xml")}
    server = FeedServer(files)
    urls = [server.base + path for path in files]
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), per_host_min_delay=0.0, per_host_concurrency=8)
    fetcher = Fetcher(policy, limiter=HostLimiter(8, 0.0))
    poll_policy = PollPolicy()

    def connector(conditional: bool) -> float:
        server.conditional = conditional
        states = {u: poll_once(fetcher, FeedState(u), poll_policy).state for u in urls}  # warm: validators
        started = time.perf_counter()
        for i in range(polls):
            url = urls[i % len(urls)]
            states[url] = poll_once(fetcher, states[url], poll_policy).state
        return polls / (time.perf_counter() - started)

    def baseline(conditional: bool) -> float:
        server.conditional = conditional
        etags = {}
        for u in urls:
            with urllib.request.urlopen(u) as resp:
                etags[u] = resp.headers.get("ETag")
        started = time.perf_counter()
        for i in range(polls):
            url = urls[i % len(urls)]
            request = urllib.request.Request(url, headers={"If-None-Match": etags[url]} if conditional else {})
            try:
                with urllib.request.urlopen(request) as resp:
                    feedparser.parse(resp.read(), response_headers={k.lower(): v for k, v in resp.headers.items()})
            except urllib.error.HTTPError as exc:  # urllib reports a 304 as an error
                if exc.code != 304:
                    raise
        return polls / (time.perf_counter() - started)

    try:
        return {
            "baseline_urllib_feedparser": {"full_polls_per_s": round(baseline(False), 1),
                                           "polls_304_per_s": round(baseline(True), 1)},
            "connector": {"full_polls_per_s": round(connector(False), 1),
                          "polls_304_per_s": round(connector(True), 1)},
            "feeds_served": len(urls),
        }
    finally:
        server.httpd.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="parsing passes over the corpus (best is kept)")
    parser.add_argument("--polls", type=int, default=200, help="polls per polling measurement")
    args = parser.parse_args(argv)
    root = data_dir()
    docs = load_documents(root)
    print(f"data: {root} ({len(docs)} documents, {sum(len(b) for b, _ in docs) / 1e6:.1f} MB)")
    parsing = time_parsing(docs, args.rounds)
    for name, f in parsing.items():
        print(f"parse  {name:<22} {f['feeds_per_s']:>9.1f} feeds/s {f['entries_per_s']:>9.1f} entries/s "
              f"{f['mb_per_s']:>6.2f} MB/s")
    polling = time_polling(root, args.polls)
    for name in ("baseline_urllib_feedparser", "connector"):
        f = polling[name]
        print(f"poll   {name:<22} {f['full_polls_per_s']:>9.1f} full polls/s (200 + parse) "
              f"{f['polls_304_per_s']:>9.1f} polls/s answered 304")
    summary = {
        "benchmark": "feeds", "python": platform.python_version(), "feedparser": feedparser.__version__,
        "documents": len(docs), "parse": parsing, "poll": polling,
        "feeds_parsed_per_s": parsing["connector"]["feeds_per_s"],
        "polls_per_s": polling["connector"]["polls_304_per_s"],
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
