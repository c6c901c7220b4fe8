"""Polling: conditional GET, server hints, backoff and parking, emitted-once ids; the streaming DoFn on Prism."""
from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import random
import subprocess
import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from connectors.fetch import FetchPolicy
from connectors.polling import (FeedState, PollFeedsForever, PollPolicy, backoff_delay, max_age_seconds,
                                outcome_records, poll_once, record_failure, record_success, retry_after_seconds,
                                success_interval)
from schemas import validate_dead_letter
from tests.test_fetch import ScriptedServer, fetcher

REPO = Path(__file__).resolve().parent.parent
POLICY = PollPolicy(default_interval_s=300, min_interval_s=60, max_interval_s=3600, backoff_base_s=60,
                    backoff_max_s=1800, jitter=0.25, park_after=3, parked_retry_s=7200, max_seen_ids=5)


def rss(*items: str, ttl: int | None = None) -> bytes:
    body = "".join(f"<item><title>{i}</title><link>http://news.example/{i}</link><guid>{i}</guid></item>" for i in items)
    ttl_el = f"<ttl>{ttl}</ttl>" if ttl else ""
    return f"<rss version='2.0'><channel><title>Feed</title>{ttl_el}{body}</channel></rss>".encode()


class FeedSite:
    """A feed with validators: answers 304 to a matching If-None-Match or If-Modified-Since."""

    def __init__(self, *items: str):
        self.items = list(items)
        self.version = 1
        self.extra_headers: dict[str, str] = {}

    def add(self, item: str):
        self.items.insert(0, item)
        self.version += 1

    def __call__(self, request):
        etag = f'"v{self.version}"'
        modified = email.utils.formatdate(1_700_000_000 + self.version * 60, usegmt=True)
        if request.headers.get("If-None-Match") == etag or request.headers.get("If-Modified-Since") == modified:
            return 304, {"ETag": etag, **self.extra_headers}, b""
        return 200, {"Content-Type": "application/rss+xml", "ETag": etag, "Last-Modified": modified,
                     **self.extra_headers}, rss(*self.items)


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


# ---------------------------------------------------------------------------------------------
# Server hints and backoff, as plain functions

def test_retry_after_both_forms():
    now = 1_700_000_000.0
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds(email.utils.formatdate(now + 90, usegmt=True), now) == pytest.approx(90, abs=1)
    assert retry_after_seconds(email.utils.formatdate(now - 90, usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_max_age_and_interval_bounds():
    assert max_age_seconds("public, max-age=600") == 600
    assert max_age_seconds("max-age=60, s-maxage=900") == 900
    assert max_age_seconds("no-cache") is None
    now = 0.0
    assert success_interval(POLICY, {}, None, now) == 300  # the default
    assert success_interval(POLICY, {"cache-control": "max-age=1200"}, None, now) == 1200
    assert success_interval(POLICY, {"cache-control": "max-age=10"}, None, now) == 300  # a hint never shortens
    assert success_interval(POLICY, {}, 24 * 3600, now) == 3600  # <ttl> clamped to the maximum
    assert success_interval(POLICY, {"retry-after": "900"}, None, now) == 900
    assert success_interval(POLICY, {}, None, now, default_s=10) == 60  # clamped to the minimum


def test_backoff_grows_with_jitter_and_honours_retry_after():
    rng = random.Random(7)
    delays = [backoff_delay(POLICY, n, rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, 1):
        base = min(1800, 60 * 2 ** (n - 1))
        assert max(60, base * 0.75) <= delay <= min(3600, base * 1.25)
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lock-step
    assert backoff_delay(POLICY, 1, rng, retry_after=1000) == 1000
    assert backoff_delay(POLICY, 1, rng, retry_after=10**6) == 3600


def test_parking_after_consecutive_failures_and_recovery():
    state = FeedState("http://news.example/feed")
    rng = random.Random(1)
    outcomes = []
    for i in range(4):
        outcome = record_failure(state, POLICY, "http_status: HTTP 500", "poll", 1000.0 * i, rng, 500)
        outcomes.append(outcome)
        state = outcome.state
    assert [o.parked_now for o in outcomes] == [False, False, True, False]  # reported once
    assert state.parked and state.failures == 4
    assert outcomes[2].delay_s == 7200 and outcomes[3].delay_s == 7200  # probed slowly once parked
    recovered = record_success(state, POLICY, 200, {}, [], 9000.0)
    assert not recovered.state.parked and recovered.state.failures == 0
    never = PollPolicy(park_after=1, parked_retry_s=None)
    assert math.isinf(record_failure(FeedState("u"), never, "x", "poll", 0.0, rng).state.next_poll_at)


def test_seen_ids_bounded_but_cover_the_current_feed():
    def entries(*ids):
        return [{"entry_id": hashlib.sha1(str(i).encode()).hexdigest(), "n": i, "link": f"http://x/{i}"} for i in ids]

    state = FeedState("u")
    out = record_success(state, POLICY, 200, {}, entries(1, 2, 3), 0.0)
    assert len(out.entries) == 3
    out = record_success(out.state, POLICY, 200, {}, entries(4, 5, 6, 1, 2, 3), 0.0)
    assert [e["n"] for e in out.entries] == [4, 5, 6]
    assert len(out.state.seen) == 6  # the bound (5) never drops ids of the current document
    out = record_success(out.state, POLICY, 200, {}, entries(7), 0.0)
    assert len(out.state.seen) == 5 and [e["n"] for e in out.entries] == [7]
    quiet = record_success(FeedState("u"), PollPolicy(emit_existing=False), 200, {}, entries(1, 2), 0.0)
    assert quiet.entries == [] and len(quiet.state.seen) == 2


def test_state_keeps_seen_ids_packed_and_reads_the_earlier_list_form():
    ids = [hashlib.sha1(str(i).encode()).hexdigest()[:16] for i in range(2000)]
    state = FeedState("u", etag='"v1"', seen=ids, polls=3)
    stored = state.to_dict()
    assert stored["seen"] == bytes.fromhex("".join(ids)) and len(stored["seen"]) == 16_000
    assert FeedState.from_dict(stored) == state
    assert FeedState.from_dict({**stored, "seen": ids}) == state  # state written by earlier releases
    odd = FeedState("u", seen=["short", ids[0]])  # not hex ids of the usual length: kept as they are
    assert FeedState.from_dict(odd.to_dict()) == odd
    # the next poll after a restore from packed state still knows what it emitted
    fresh = [{"entry_id": hashlib.sha1(b"new").hexdigest(), "link": "http://x/new"},
             {"entry_id": hashlib.sha1(b"0").hexdigest(), "link": "http://x/0"}]
    out = record_success(FeedState.from_dict(stored), POLICY, 200, {}, fresh, 0.0)
    assert [e["link"] for e in out.entries] == ["http://x/new"]


# ---------------------------------------------------------------------------------------------
# Against the local server

def test_conditional_get_and_304(server):
    site = FeedSite("a", "b")
    server.routes["/feed"] = site
    f = fetcher()
    state = FeedState(server.url("/feed"))
    first = poll_once(f, state, POLICY, now=0.0)
    assert [e["title"] for e in first.entries] == ["a", "b"] and first.status == 200
    assert first.state.etag == '"v1"' and first.state.last_modified

    second = poll_once(f, first.state, POLICY, now=300.0)
    sent = server.hits("/feed")[-1]["headers"]
    assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == first.state.last_modified
    assert second.not_modified and second.entries == [] and second.state.etag == '"v1"'
    assert second.delay_s == 300

    site.add("c")
    third = poll_once(f, second.state, POLICY, now=600.0)
    assert [e["title"] for e in third.entries] == ["c"]  # the older entries are not emitted again
    assert third.state.etag == '"v2"'


def test_server_ignoring_validators_still_emits_once(server):
    server.routes["/feed"] = lambda r: (200, {"Content-Type": "application/rss+xml"}, rss("a", "b"))
    f = fetcher()
    first = poll_once(f, FeedState(server.url("/feed")), POLICY, now=0.0)
    again = poll_once(f, first.state, POLICY, now=300.0)
    assert len(first.entries) == 2 and again.entries == []


def test_retry_after_seconds_on_429(server):
    server.routes["/feed"] = lambda r: (429, {"Retry-After": "1500"}, b"slow down")
    outcome = poll_once(fetcher(), FeedState(server.url("/feed")), POLICY, now=0.0, rng=random.Random(3))
    assert outcome.error.startswith("http_status: HTTP 429") and outcome.delay_s == 1500
    assert outcome.state.next_poll_at == 1500 and outcome.state.failures == 1


def test_retry_after_http_date_on_503(server):
    now = time.time()
    when = email.utils.formatdate(now + 2400, usegmt=True)
    server.routes["/feed"] = lambda r: (503, {"Retry-After": when}, b"maintenance")
    outcome = poll_once(fetcher(), FeedState(server.url("/feed")), POLICY, now=now, rng=random.Random(3))
    assert outcome.delay_s == pytest.approx(2400, abs=2)


def test_retry_after_and_ttl_on_success(server):
    server.routes["/feed"] = lambda r: (200, {"Content-Type": "application/rss+xml", "Retry-After": "1000"}, rss("a"))
    assert poll_once(fetcher(), FeedState(server.url("/feed")), POLICY, now=0.0).delay_s == 1000
    server.routes["/ttl"] = lambda r: (200, {"Content-Type": "application/rss+xml"}, rss("a", ttl=20))
    assert poll_once(fetcher(), FeedState(server.url("/ttl")), POLICY, now=0.0).delay_s == 1200


def test_backoff_and_parking_against_a_failing_server(server):
    server.routes["/feed"] = lambda r: (500, {}, b"boom")
    f = fetcher()
    state = FeedState(server.url("/feed"))
    rng = random.Random(11)
    records = []
    delays = []
    for i in range(3):
        outcome = poll_once(f, state, POLICY, now=float(i), rng=rng)
        delays.append(outcome.delay_s)
        records += list(outcome_records(outcome, {"url": state.url}))
        state = outcome.state
    assert delays[0] < delays[1] and delays[2] == POLICY.parked_retry_s
    assert state.parked and len(server.hits("/feed")) == 3
    dead = [r for kind, r in records if kind == "dead_letter"]
    for record in dead:
        validate_dead_letter(record)
    assert [d["attempt"] for d in dead] == [1, 2, 3, 3]
    assert dead[-1]["reason"].startswith("parked after 3 consecutive failures")
    assert json.loads(dead[-1]["detail"])["parked"] is True


def test_unparseable_feed_is_a_parse_failure_and_keeps_no_validators(server):
    server.routes["/feed"] = lambda r: (200, {"Content-Type": "text/html", "ETag": '"x"'}, b"<html><p>moved</p></html>")
    outcome = poll_once(fetcher(), FeedState(server.url("/feed")), POLICY, now=0.0)
    assert outcome.error_stage == "parse" and outcome.state.etag is None


def test_entries_without_link_become_dead_letters():
    state = FeedState("http://news.example/feed")
    out = record_success(state, POLICY, 200, {}, [{"entry_id": "1" * 40, "link": None, "guid": "g1"},
                                                 {"entry_id": "2" * 40, "link": "http://news.example/2"}], 0.0)
    records = list(outcome_records(out, {"url": state.url, "name": "Example News"}))
    assert [k for k, _ in records] == ["dead_letter", "entry"]
    assert records[1][1]["publisher"] == "Example News"


# ---------------------------------------------------------------------------------------------
# The streaming DoFn on Prism

def _prism_binary() -> str | None:
    try:
        path = subprocess.run(["bash", str(REPO / "deploy" / "prism.sh"), "path"], capture_output=True, text=True,
                              timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return path if path and os.access(path, os.X_OK) else None


class AppendJsonLines(beam.DoFn):
    """Writes each element to a file, which the test reads while the pipeline runs."""

    def __init__(self, target: str):
        self.target = target

    def process(self, element):
        with open(self.target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(element) + "\n")


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_poll_feeds_forever_on_prism(server, tmp_path):
    """A feed that gains an entry while the pipeline runs: the new entry comes out, the old ones once."""
    prism = _prism_binary()
    if not prism:
        pytest.skip("Prism is not installed (deploy/prism.sh install)")
    site = FeedSite("a", "b")
    server.routes["/feed"] = site
    server.routes["/broken"] = lambda r: (500, {}, b"")
    url, broken = server.url("/feed"), server.url("/broken")
    entries_file, dead_file = tmp_path / "entries.jsonl", tmp_path / "dead.jsonl"
    # Beam keeps one Prism job server per process, created by the first PrismRunner: a DirectRunner
    # test that ran earlier (it tries Prism without a location) would leave one that downloads
    options = PipelineOptions(["--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK",
                               "--streaming", "--experiments=disable_prism_server_singleton"])
    pipeline = beam.Pipeline(options=options)
    fetch_policy = FetchPolicy(allow_hosts=("127.0.0.1",), per_host_min_delay=0.0, total_timeout=5.0)
    poll_policy = PollPolicy(default_interval_s=1.0, min_interval_s=0.5, backoff_base_s=0.5, jitter=0.1,
                             park_after=2, parked_retry_s=None)
    polled = (pipeline
              | beam.Create([(url, {"url": url, "name": "Local"}), (broken, {"url": broken})])
              | beam.ParDo(PollFeedsForever(fetch_policy, poll_policy)).with_outputs("dead_letter", main="entries"))
    polled.entries | "WriteEntries" >> beam.ParDo(AppendJsonLines(str(entries_file)))
    polled.dead_letter | "WriteDead" >> beam.ParDo(AppendJsonLines(str(dead_file)))
    result = pipeline.run()
    try:
        assert _wait_for(lambda: len(_read_lines(entries_file)) >= 2, 90), "the first poll emitted nothing"
        assert _wait_for(lambda: any(h["headers"].get("If-None-Match") for h in server.hits("/feed")), 30)
        site.add("c")
        assert _wait_for(lambda: len(_read_lines(entries_file)) >= 3, 30), "the new entry was not emitted"
        polls_before = len(server.hits("/feed"))
        assert _wait_for(lambda: len(server.hits("/feed")) >= polls_before + 3, 30)  # still looping
        assert _wait_for(lambda: any("parked" in d["reason"] for d in _read_lines(dead_file)), 30)
    finally:
        result.cancel()
    titles = [e["title"] for e in _read_lines(entries_file)]
    assert sorted(titles) == ["a", "b", "c"], titles  # each entry exactly once across many polls
    assert all(e["publisher"] == "Local" for e in _read_lines(entries_file))
    dead = _read_lines(dead_file)
    assert {d["input_ref"] for d in dead} == {broken}
    assert len(server.hits("/broken")) == 2  # parked for good after two failures: no more requests
