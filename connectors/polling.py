"""Polling feeds forever: a per-feed state machine, and the Beam DoFn that keeps it in keyed state.

A feed reader earns a publisher's trust by asking only when something may have changed and by
backing off when the server struggles. Per feed, :class:`FeedState` holds the validators of the
last good response (ETag, Last-Modified: the next request is conditional and a 304 costs nothing),
the ids of the entries already emitted (bounded), the count of consecutive failures and the time
of the next poll:

- after a success, the next poll waits the feed's interval - the configured default, lengthened
  by any hint the server gave (``Retry-After`` as seconds or as an HTTP date, ``Cache-Control:
  max-age``, ``Expires``, RSS ``<ttl>``, ``sy:updatePeriod``) - clamped to the configured bounds;
- after a failure, it waits an exponential backoff with jitter (or the server's Retry-After if
  longer), and after ``park_after`` failures in a row the feed is parked: reported on the dead-letter
  output and only probed every ``parked_retry_s`` (never, if None) until it answers again.

:func:`poll_once` is plain Python (tests and the batch path call it directly).
:class:`PollFeedsForever` is the streaming source: keyed by feed URL, it holds the state in
Beam keyed state and loops with a processing-time timer, so the runner checkpoints ETags and
emitted ids with the output and an entry is emitted once across polls and restarts.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import json
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp

from connectors.feeds import FeedParseError, parse_feed
from connectors.fetch import FetchError, Fetcher, FetchPolicy

SEEN_ID_CHARS = 16  # 64 bits of the entry id: collisions are negligible, state stays small
_SEEN_ID_BYTES = SEEN_ID_CHARS // 2  # packed in state
_MAX_AGE = re.compile(r"(?:^|[,\s])(s-maxage|max-age)\s*=\s*\"?(\d+)", re.I)


@dataclass(frozen=True)
class PollPolicy:
    default_interval_s: float = 900.0
    min_interval_s: float = 60.0
    max_interval_s: float = 86400.0
    backoff_base_s: float = 60.0
    backoff_max_s: float = 6 * 3600.0
    jitter: float = 0.25  # backoff delays are multiplied by a uniform factor in [1-jitter, 1+jitter]
    park_after: int = 10  # consecutive failures
    parked_retry_s: Optional[float] = 86400.0  # how often a parked feed is probed; None: never
    max_seen_ids: int = 2000  # emitted ids remembered per feed (at least the feed's current entries)
    emit_existing: bool = True  # the first poll emits the entries already in the feed


@dataclass
class FeedState:
    url: str
    etag: Optional[str] = None
    last_modified: Optional[str] = None
    seen: list[str] = field(default_factory=list)  # truncated entry ids, newest first
    failures: int = 0  # consecutive
    parked: bool = False
    next_poll_at: float = 0.0  # epoch seconds; math.inf when parked for good
    last_polled_at: Optional[float] = None
    last_status: Optional[int] = None
    last_error: Optional[str] = None
    polls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The form kept in state: ``seen`` packed to 8 bytes an id (2,000 ids are 16 KB, not ~150 KB of strings)."""
        return {**dataclasses.asdict(self), "seen": _pack_ids(self.seen)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeedState":
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in d.items() if k in known}
        if isinstance(fields.get("seen"), bytes):
            packed = fields["seen"]
            fields["seen"] = [packed[i:i + _SEEN_ID_BYTES].hex() for i in range(0, len(packed), _SEEN_ID_BYTES)]
        return cls(**fields)


def _pack_ids(ids: list[str]) -> bytes | list[str]:
    """Hex ids of SEEN_ID_CHARS as one bytes value; any other ids (none are made so) as they are."""
    if all(len(i) == SEEN_ID_CHARS for i in ids):
        try:
            return bytes.fromhex("".join(ids))
        except ValueError:
            pass
    return list(ids)


@dataclass
class PollOutcome:
    state: FeedState
    entries: list[dict[str, Any]]  # entries not emitted before
    delay_s: float  # until the next poll (math.inf: parked for good)
    status: Optional[int] = None
    error: Optional[str] = None  # "kind: reason" of a failed poll
    error_stage: Optional[str] = None  # "poll" (fetch) or "parse"
    parked_now: bool = False
    feed_title: Optional[str] = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


# ---------------------------------------------------------------------------------------------
# What the server says about when to come back

def retry_after_seconds(value: Optional[str], now: float) -> Optional[float]:
    """Retry-After as delta-seconds (``120``) or as an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


def max_age_seconds(cache_control: Optional[str]) -> Optional[float]:
    """``s-maxage`` or ``max-age`` of a Cache-Control header (the larger if both)."""
    ages = [float(m.group(2)) for m in _MAX_AGE.finditer(cache_control or "")]
    return max(ages) if ages else None


def expires_seconds(headers: Mapping[str, str], now: float) -> Optional[float]:
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        when = email.utils.parsedate_to_datetime(expires)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


def success_interval(policy: PollPolicy, headers: Mapping[str, str], update_interval_s: Optional[float],
                     now: float, default_s: Optional[float] = None) -> float:
    """The wait after a good poll: the default, lengthened by the server's hints, within bounds.

    A hint never shortens the wait below the default: it says "not before", not "come sooner".
    """
    hints = [default_s if default_s is not None else policy.default_interval_s]
    for hint in (retry_after_seconds(headers.get("retry-after"), now), max_age_seconds(headers.get("cache-control")),
                 expires_seconds(headers, now), update_interval_s):
        if hint is not None:
            hints.append(float(hint))
    return min(policy.max_interval_s, max(policy.min_interval_s, max(hints)))


def backoff_delay(policy: PollPolicy, failures: int, rng: random.Random,
                  retry_after: Optional[float] = None) -> float:
    """Exponential backoff with jitter after ``failures`` in a row; the server's Retry-After if longer."""
    base = min(policy.backoff_max_s, policy.backoff_base_s * (2 ** max(0, failures - 1)))
    delay = base * rng.uniform(1 - policy.jitter, 1 + policy.jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(policy.max_interval_s, max(policy.min_interval_s, delay))


def conditional_headers(state: FeedState) -> dict[str, str]:
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


# ---------------------------------------------------------------------------------------------
# The state machine

def record_success(state: FeedState, policy: PollPolicy, status: int, headers: Mapping[str, str],
                   entries: Iterable[dict[str, Any]], now: float, update_interval_s: Optional[float] = None,
                   default_s: Optional[float] = None) -> PollOutcome:
    """Apply a 200 (with its parsed entries) or a 304 (no entries) to ``state``."""
    first_poll = state.polls == 0 and not state.seen
    state = dataclasses.replace(state, failures=0, parked=False, last_polled_at=now, last_status=status,
                                last_error=None, polls=state.polls + 1)
    if status != 304 or headers.get("etag") or headers.get("last-modified"):
        state.etag = headers.get("etag") or (state.etag if status == 304 else None)
        state.last_modified = headers.get("last-modified") or (state.last_modified if status == 304 else None)
    fresh: list[dict[str, Any]] = []
    if status != 304:
        seen = set(state.seen)
        current: dict[str, None] = {}  # ordered, and the same entry twice in one document counts once
        for entry in entries:
            key = entry["entry_id"][:SEEN_ID_CHARS]
            if key not in current and key not in seen:
                fresh.append(entry)
            current[key] = None
        if first_poll and not policy.emit_existing:
            fresh = []
        older = [k for k in state.seen if k not in current]
        state.seen = (list(current) + older)[:max(policy.max_seen_ids, len(current))]
    delay = success_interval(policy, headers, update_interval_s, now, default_s)
    state.next_poll_at = now + delay
    return PollOutcome(state, fresh, delay, status=status)


def record_failure(state: FeedState, policy: PollPolicy, error: str, stage: str, now: float, rng: random.Random,
                   status: Optional[int] = None, headers: Optional[Mapping[str, str]] = None) -> PollOutcome:
    """Apply a failed fetch or parse: back off, and park after ``policy.park_after`` in a row."""
    failures = state.failures + 1
    parked_now = failures >= policy.park_after and not state.parked
    parked = state.parked or parked_now
    if parked:
        delay = policy.parked_retry_s if policy.parked_retry_s is not None else math.inf
    else:
        retry_after = retry_after_seconds((headers or {}).get("retry-after"), now)
        delay = backoff_delay(policy, failures, rng, retry_after)
    state = dataclasses.replace(state, failures=failures, parked=parked, last_polled_at=now, last_status=status,
                                last_error=error, polls=state.polls + 1, next_poll_at=now + delay)
    return PollOutcome(state, [], delay, status=status, error=error, error_stage=stage, parked_now=parked_now)


def poll_once(fetcher: Fetcher, state: FeedState, policy: PollPolicy, now: Optional[float] = None,
              rng: Optional[random.Random] = None, default_s: Optional[float] = None) -> PollOutcome:
    """One conditional GET of ``state.url`` and what it changes."""
    now = time.time() if now is None else now
    rng = rng or random.Random()
    try:
        resp = fetcher.get(state.url, conditional_headers(state), kind="feed")
    except FetchError as exc:
        return record_failure(state, policy, f"{exc.kind}: {exc.reason}", "poll", now, rng, exc.status, exc.headers)
    if resp.not_modified:
        return record_success(state, policy, 304, resp.headers, [], now, default_s=default_s)
    try:
        parsed = parse_feed(resp.body, resp.url, resp.headers)
    except FeedParseError as exc:
        return record_failure(state, policy, str(exc), "parse", now, rng, resp.status, resp.headers)
    outcome = record_success(state, policy, resp.status, resp.headers, parsed["entries"], now,
                             parsed.get("update_interval_s"), default_s)
    outcome.feed_title = parsed.get("title")
    return outcome


# ---------------------------------------------------------------------------------------------
# Beam

def _dead_letter(stage: str, reason: str, url: str, attempt: int, detail: Optional[dict] = None) -> dict[str, Any]:
    from schemas import DeadLetter

    return DeadLetter(stage=stage, reason=reason[:1000], input_ref=url,
                      failed_at=dt.datetime.now(dt.timezone.utc).isoformat(), attempt=attempt, feed_url=url,
                      detail=json.dumps(detail, sort_keys=True)[:4000] if detail else None).to_dict()


def outcome_records(outcome: PollOutcome, feed: Mapping[str, Any]):
    """What one poll emits: ``("entry", dict)`` and ``("dead_letter", dict)`` pairs.

    Entries without a link cannot be fetched: they become dead letters, as in the batch PollFeed.
    """
    url = outcome.state.url
    for entry in outcome.entries:
        if not entry.get("link"):
            yield "dead_letter", _dead_letter("parse", "entry has no link", url, 1,
                                              {"entry": entry.get("guid") or entry["entry_id"]})
            continue
        entry = dict(entry)
        entry["publisher"] = feed.get("name") or outcome.feed_title
        yield "entry", entry
    if outcome.error:
        detail = {"status": outcome.status, "consecutive_failures": outcome.state.failures,
                  "next_poll_in_s": None if math.isinf(outcome.delay_s) else round(outcome.delay_s, 1)}
        yield "dead_letter", _dead_letter(outcome.error_stage or "poll", outcome.error, url, outcome.state.failures, detail)
    if outcome.parked_now:
        yield "dead_letter", _dead_letter("poll", f"parked after {outcome.state.failures} consecutive failures; "
                                                  f"last: {outcome.error}", url, outcome.state.failures,
                                          {"parked": True, "probe_every_s": None if math.isinf(outcome.delay_s)
                                           else outcome.delay_s})


DEAD = "dead_letter"


class PollFeedsForever(beam.DoFn):
    """``(feed_url, feed_config)`` in; new entries out, dead letters on the ``dead_letter`` tag.

    The first element of a key polls at once (its timer is set to now); from then on the
    processing-time timer loops, each firing one :func:`poll_once` and re-arming the timer at the
    next poll time. Later elements of the same key (a periodic impulse re-sending the feed list)
    only refresh the stored config and re-arm the timer at the stored time - which also moves the
    output watermark hold of the loop forward to the newer element's timestamp. A feed's own
    ``interval_s`` overrides the policy's default interval. A feed parked for good
    (``parked_retry_s=None``) has no timer until a new element for it arrives.
    """

    STATE = userstate.ReadModifyWriteStateSpec("feed_state", coders.PickleCoder())
    CONFIG = userstate.ReadModifyWriteStateSpec("feed_config", coders.PickleCoder())
    POLL = userstate.TimerSpec("poll", TimeDomain.REAL_TIME)

    def __init__(self, fetch_policy: FetchPolicy, poll_policy: PollPolicy = PollPolicy(),
                 clock: Callable[[], float] = time.time):
        self.fetch_policy = fetch_policy
        self.poll_policy = poll_policy
        self.clock = clock
        self.polls = Metrics.counter("poll", "polls")
        self.not_modified = Metrics.counter("poll", "not_modified")
        self.entries = Metrics.counter("poll", "entries")
        self.failed = Metrics.counter("poll", "feeds_failed")
        self.parked = Metrics.counter("poll", "feeds_parked")

    def setup(self):
        self.fetcher = Fetcher(self.fetch_policy)
        self.rng = random.Random()

    def process(self, element, state=beam.DoFn.StateParam(STATE), config=beam.DoFn.StateParam(CONFIG),
                timer=beam.DoFn.TimerParam(POLL)):
        url, feed = element
        config.write(dict(feed))
        stored = state.read()
        if stored is None:
            now = self.clock()  # stored, so that a re-sent feed list re-arms at now, not at the epoch
            state.write(FeedState(url, next_poll_at=now).to_dict())
            timer.set(Timestamp.of(now))
        elif not math.isinf(stored["next_poll_at"]):
            timer.set(Timestamp.of(stored["next_poll_at"]))

    @userstate.on_timer(POLL)
    def poll(self, key=beam.DoFn.KeyParam, state=beam.DoFn.StateParam(STATE),
             config=beam.DoFn.StateParam(CONFIG), timer=beam.DoFn.TimerParam(POLL)):
        stored = state.read()
        feed = config.read() or {"url": key}
        current = FeedState.from_dict(stored) if stored else FeedState(key)
        default_s = float(feed["interval_s"]) if feed.get("interval_s") else None
        outcome = poll_once(self.fetcher, current, self.poll_policy, self.clock(), self.rng, default_s)
        self.polls.inc()
        if outcome.not_modified:
            self.not_modified.inc()
        if outcome.error:
            self.failed.inc()
        if outcome.parked_now:
            self.parked.inc()
        state.write(outcome.state.to_dict())
        if not math.isinf(outcome.state.next_poll_at):
            timer.set(Timestamp.of(outcome.state.next_poll_at))
        for kind, record in outcome_records(outcome, feed):
            if kind == "entry":
                self.entries.inc()
                yield record
            else:
                yield TaggedOutput(DEAD, record)
