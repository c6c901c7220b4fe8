"""Deduplication: canonical URLs, exact content hashes and near-duplicate story clusters.

One story reaches us many times: the same URL with tracking parameters, its AMP twin, a wire
reprint with a dateline and a footer, a trimmed copy, a light edit, a live-blog update. Three
layers catch them:

1. :func:`canonical_url` folds URL variants, and :func:`article_id` hashes the result: one canonical
   URL is one article, whichever way it was reached (the page's rel=canonical, chosen during
   extraction, resolves the AMP twins that no URL rule can).
2. :func:`content_hash` of the normalised text catches exact copies, however short.
3. MinHash over word shingles, banded for LSH, finds candidate copies; each candidate is verified on
   the compact signatures by estimated Jaccard similarity or by containment (a trimmed copy is
   contained in its original), see :func:`verify`.

The pure-Python core (:class:`Bucket` for one band key's state, :func:`decide` for one article's
verdict) is shared by the offline path :func:`cluster_offline` and the Beam transform
:class:`Deduplicate`, which runs it in three steps:

- ``Sign``: MinHash once per article; the record goes to its article key, a probe to each band key.
- ``BandIndex``, keyed by band: each key's state holds the compact signatures it has seen (no worker
  holds them all) and answers every verified pair to *both* articles. State is bounded by an
  event-time TTL timer and a size cap per key.
- ``Decide``, keyed by article id: buffers the record and its band answers until the watermark
  passes the article's event time, then decides. Works alike in batch and streaming.

Semantics: the first article seen founds the cluster (``cluster_id`` is its id); later members
carry ``duplicate_of`` (their earliest verified predecessor) and go to the duplicates output.
"First" is event time for every article that arrives before the watermark passes it, so a copy that
reaches us before its original in processing time still becomes the duplicate. An article that
arrives late (behind the watermark) cannot take the place of a copy that was already emitted: a band
marks its members *released* once the watermark passes them, and a released neighbour comes first
whatever the event times say. Articles older than the TTL are forgotten: a copy arriving after it
founds a new cluster.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apache_beam as beam
import numpy as np
from apache_beam.coders import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Duration, Timestamp
from courlan import normalize_url

_WORD = re.compile(r"\w+", re.U)
_MICROS_PER_DAY = 86_400_000_000
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9], dtype=np.uint64)


@dataclass(frozen=True)
class DedupConfig:
    """Built by pipelines/config.py from the YAML ``dedup:`` keys, by field name."""

    shingle: int = 3  # words per shingle (at most 8)
    num_perm: int = 128  # MinHash values per signature
    bands: int = 64  # LSH bands of ``rows`` values each (bands * rows <= num_perm)
    rows: int = 2  # few rows per band: copies of low Jaccard (trimmed ones) still collide
    sig_bits: int = 8  # bits kept per MinHash value in state (b-bit MinHash), 8 or 16
    jaccard: float = 0.5  # one story if the estimated Jaccard similarity reaches this ...
    containment: float = 0.5  # ... or this share of the smaller text is in the larger one
    containment_jaccard: float = 0.18  # ... and the smaller is not a mere quote (Jaccard floor)
    min_tokens: int = 20  # shorter texts are only matched exactly
    ttl_days: float = 7.0  # event time an article stays in state
    max_per_key: int = 500  # size cap of one band key's state (the oldest go first)

    def __post_init__(self):
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"dedup: bands * rows ({self.bands} * {self.rows}) exceeds num_perm ({self.num_perm})")
        if not 1 <= self.shingle <= len(_MIX):
            raise ValueError(f"dedup: shingle must be 1 to {len(_MIX)} words")
        if self.sig_bits not in (8, 16):
            raise ValueError("dedup: sig_bits must be 8 or 16")

    @property
    def ttl_micros(self) -> int:
        return int(self.ttl_days * _MICROS_PER_DAY)


# ---- URLs ------------------------------------------------------------------------------------

_TRACKING = re.compile(
    r"^(?:utm_\w+|fbclid|gclid|gclsrc|dclid|gbraid|wbraid|msclkid|yclid|twclid|ttclid|igshid|mc_[ce]id"
    r"|_ga|_gl|_hs\w+|hsa_\w+|mkt_tok|oly_\w+|vero_\w+|wt\.\w+|s_cid|cmpid|ocid|ncid|smid|soc_(?:src|trk)"
    r"|ref|ref_src|ref_url|referrer|share|amp|_amp|outputtype|output|at_\w+|__twitter_impression)$",
    re.I)
_AMP_VALUES = {"outputtype": "amp", "output": "amp"}  # only these values of these keys are AMP flags
_AMP_PATH = re.compile(r"(?:/amp/?$|/amp(?=/)|\.amp(?=\.html?$|$)|/amp\.html?$)", re.I)
_AMP_CACHE = re.compile(r"^/(?:amp/s/|amp/|[cvi]/s/|[cvi]/)(.+)$", re.I)  # google.com/amp/s/..., *.cdn.ampproject.org/c/s/...


def _is_tracking(key: str, value: str) -> bool:
    k = key.lower()
    if k in _AMP_VALUES:
        return value.lower() == _AMP_VALUES[k]
    return bool(_TRACKING.match(k))


def canonical_url(url: str) -> str:
    """Tracking parameters, fragments, host case and default ports removed; AMP variants folded.

    AMP twins folded here are the URL-shaped ones (``/amp/``, ``.amp.html``, ``?amp=1``,
    ``amp.`` hosts, the Google and ampproject caches); the rest resolve through the page's
    rel=canonical, which the extraction step reads.
    """
    url = url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    cached = _AMP_CACHE.match(parts.path)
    if cached and (host.endswith(".cdn.ampproject.org") or re.match(r"^(www\.)?google\.[a-z.]+$", host)):
        secure = parts.path.lower().startswith(("/amp/s/", "/c/s/", "/v/s/", "/i/s/"))
        url = ("https://" if secure or host.startswith("www.google") else "http://") + cached.group(1)
        if parts.query:
            url += "?" + parts.query
    try:
        normal = normalize_url(url, strict=False)
    except (ValueError, AttributeError):
        normal = url
    parts = urlsplit(normal)
    netloc = parts.netloc.lower()
    if netloc.startswith("amp."):
        netloc = netloc[4:]
    if parts.port in (80, 443) or netloc.endswith((":80", ":443")):
        netloc = netloc.rsplit(":", 1)[0]
    path = _AMP_PATH.sub("", parts.path) or "/"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k, v)])
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


def article_id(canonical: str) -> str:
    """Stable id of an article (also the Kafka key): a hash of its canonical URL.

    The scheme, a leading ``www.`` and a trailing slash do not change the id: http and https,
    with or without ``www``, are the same article on any news site.
    """
    parts = urlsplit(canonical)
    host = parts.netloc[4:] if parts.netloc.startswith("www.") else parts.netloc
    identity = host + (parts.path.rstrip("/") or "/") + ("?" + parts.query if parts.query else "")
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


# ---- text, hashes, signatures ----------------------------------------------------------------

def tokens(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def content_hash(text: str) -> str:
    """Exact-copy key: case, punctuation, spacing and Unicode forms do not count."""
    return hashlib.sha256(" ".join(tokens(text)).encode("utf-8")).hexdigest()


def hash_token(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class Signature:
    values: np.ndarray  # uint64[num_perm]
    size: int  # number of distinct shingles

    def digest(self) -> str:
        return hashlib.sha1(self.values.tobytes()).hexdigest()

    def band_keys(self, bands: int, rows: int) -> list[str]:
        return [f"{i}:{hashlib.blake2b(self.values[i * rows:(i + 1) * rows].tobytes(), digest_size=8).hexdigest()}"
                for i in range(bands)]

    def compact(self, bits: int) -> bytes:
        """The low ``bits`` of each value: what state keeps for verification (b-bit MinHash)."""
        return (self.values & np.uint64((1 << bits) - 1)).astype(np.uint8 if bits == 8 else "<u2").tobytes()


class MinHasher:
    """MinHash over word shingles, one vectorised numpy pass per text.

    Shingles are first hashed to 64 bits (blake2b), so a multiply-add modulo 2^64 with odd random
    multipliers (multiply-shift hashing, compared on the high bits) is a fine permutation family,
    and ten times cheaper than arithmetic modulo a prime.
    """

    def __init__(self, config: DedupConfig = DedupConfig(), seed: int = 1):
        self.config = config
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 1 << 63, size=config.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 1 << 63, size=config.num_perm, dtype=np.uint64)

    def shingles(self, toks: list[str]) -> np.ndarray:
        """Distinct 64-bit hashes of the k-word shingles: each word hashed once (blake2b), the
        k word hashes of a shingle mixed by odd multipliers, in numpy."""
        if not toks:
            return np.empty(0, dtype=np.uint64)
        vocab = {t: hash_token(t) for t in set(toks)}
        words = np.fromiter((vocab[t] for t in toks), dtype=np.uint64, count=len(toks))
        k = min(self.config.shingle, len(toks))
        n = len(toks) - k + 1
        mixed = np.zeros(n, dtype=np.uint64)
        for i in range(k):
            mixed = (mixed ^ words[i:i + n]) * _MIX[i]  # wraps modulo 2^64
        return np.unique(mixed ^ (mixed >> np.uint64(29)))

    def signature(self, text: str) -> Signature:
        return self.signature_of(self.shingles(tokens(text)))

    def signature_of(self, shingle_hashes: np.ndarray) -> Signature:
        """Signature of a set of distinct 64-bit shingle hashes."""
        if not len(shingle_hashes):
            return Signature(np.full(self.config.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64), 0)
        hashed = self.a[:, None] * shingle_hashes[None, :] + self.b[:, None]  # wraps modulo 2^64
        return Signature(hashed.min(axis=1), len(shingle_hashes))


def similarity(a: bytes, a_size: int, b: bytes, b_size: int, bits: int) -> tuple[float, float]:
    """(estimated Jaccard, estimated containment of the smaller in the larger) of compact signatures.

    A b-bit value matches by chance with probability 2^-bits; the estimate corrects for it.
    """
    if not a_size or not b_size:
        return 0.0, 0.0
    dtype = np.uint8 if bits == 8 else "<u2"
    agree = float(np.mean(np.frombuffer(a, dtype) == np.frombuffer(b, dtype)))
    chance = 2.0 ** -bits
    j = max(0.0, (agree - chance) / (1 - chance))
    inter = j / (1 + j) * (a_size + b_size)
    return j, min(1.0, inter / min(a_size, b_size))


def verify(a: bytes, a_size: int, b: bytes, b_size: int, config: DedupConfig) -> Optional[float]:
    """The similarity that makes two articles one story, or None.

    Either most of both texts is shared (Jaccard), or most of the smaller text is in the larger
    (containment: trimmed copies) while the smaller is a fair share of the larger, so that a
    paragraph quoted from another story inside a long update does not join two stories.
    """
    if min(a_size, b_size) < config.min_tokens:
        return None
    j, c = similarity(a, a_size, b, b_size, config.sig_bits)
    if j >= config.jaccard or (c >= config.containment and j >= config.containment_jaccard):
        return round(max(j, c), 4)
    return None


# ---- the shared core: one band key's state, one article's verdict ------------------------------

class Probe(NamedTuple):
    """One article as a band key sees it. ``sig`` is empty on the exact-hash key."""

    id: str
    micros: int  # event time, the order of "first"
    sig: bytes
    size: int


class Member(NamedTuple):
    """One article in one band key's state (compact: this is the state per article and key)."""

    id: str
    micros: int
    sig: bytes
    size: int
    released: bool  # the watermark passed it: it was decided and emitted
    root: Optional[tuple[int, str]]  # (micros, id) of the earliest article this key knows in its cluster; None: itself


class Edge(NamedTuple):
    """A band's answer to one article about one verified neighbour."""

    other: str
    micros: int
    similarity: float
    first: int  # +1 the neighbour was released before this article arrived, -1 the reverse, 0 neither
    root: tuple[int, str]


def _order(micros: int, rid: str) -> tuple[int, str]:
    return (micros, rid)


def _root(m: Member) -> tuple[int, str]:
    return m.root or (m.micros, m.id)


class Bucket:
    """The members of one band key (or exact-hash key) and how a new probe meets them."""

    def __init__(self, members: Iterable[Member] = (), exact: bool = False):
        self.members = list(members)
        self.exact = exact

    def probe(self, p: Probe, config: DedupConfig) -> list[tuple[str, Edge]]:
        """Add ``p``; return the verified pairs as edges addressed to both articles."""
        if any(m.id == p.id for m in self.members):
            return []  # the same article again (same canonical URL): its own key decides
        found: list[tuple[Member, float]] = []
        for m in self.members:
            sim = 1.0 if self.exact else verify(p.sig, p.size, m.sig, m.size, config)
            if sim is not None:
                found.append((m, sim))
        mine = _order(p.micros, p.id)
        before = [m for m, _ in found if m.released or _order(m.micros, m.id) < mine]
        root = min((_root(m) for m in before), default=mine)
        edges = []
        for m, sim in found:
            edges.append((p.id, Edge(m.id, m.micros, sim, 1 if m.released else 0, _root(m))))
            edges.append((m.id, Edge(p.id, p.micros, sim, -1 if m.released else 0, root)))
        if found:  # a late-arriving earlier article becomes the root of the later ones it matches
            later = {m.id for m, _ in found if not m.released and mine < _order(m.micros, m.id)}
            self.members = [m._replace(root=min(_root(m), root)) if m.id in later else m for m in self.members]
        self.members.append(Member(p.id, p.micros, p.sig, p.size, False, None if root == mine else root))
        if len(self.members) > config.max_per_key:
            self.members.sort(key=lambda m: _order(m.micros, m.id))
            del self.members[:len(self.members) - config.max_per_key]
        return edges

    def release(self, until_micros: int) -> None:
        self.members = [m._replace(released=True) if m.micros <= until_micros and not m.released else m
                        for m in self.members]

    def expire(self, until_micros: int, ttl_micros: int) -> None:
        self.members = [m for m in self.members if m.micros + ttl_micros > until_micros]

    def next_event(self, ttl_micros: int) -> Optional[int]:
        """When this key next needs the watermark: a release, else the oldest member's expiry."""
        pending = [m.micros for m in self.members if not m.released]
        if pending:
            return min(pending)
        return min((m.micros + ttl_micros for m in self.members), default=None)


class Verdict(NamedTuple):
    cluster_id: str
    duplicate_of: Optional[str]
    similarity: Optional[float]


def decide(rid: str, micros: int, edges: Iterable[Edge]) -> Verdict:
    """One article's verdict from all its band answers.

    A neighbour comes before the article if a band saw it released before the article arrived,
    or, when no band saw either released first, if it is earlier in event time. The earliest such
    neighbour is the original; the cluster is the earliest root any of them knows.
    """
    merged: dict[str, Edge] = {}
    flags: dict[str, set[int]] = {}
    for e in map(Edge._make, edges):  # the same pair answers from every band it shares
        old = merged.get(e.other)
        merged[e.other] = e if old is None else e._replace(similarity=max(e.similarity, old.similarity),
                                                          root=min(e.root, old.root))
        flags.setdefault(e.other, set()).add(e.first)
    mine = _order(micros, rid)
    before = []
    for other, e in merged.items():
        seen = flags[other] - {0}
        if seen == {1} or (len(seen) != 1 and _order(e.micros, other) < mine):
            before.append(e)
    if not before:
        return Verdict(rid, None, None)
    original = min(before, key=lambda e: _order(e.micros, e.other))
    root = min(min(e.root for e in before), _order(original.micros, original.other))
    return Verdict(root[1], original.other, original.similarity)


def _keys(sig: Signature, chash: str, n_tokens: int, config: DedupConfig) -> list[str]:
    """The state keys an article probes: its exact hash and, if long enough, its LSH bands."""
    keys = ["h:" + chash] if n_tokens else []
    if sig.size >= config.min_tokens:
        keys += sig.band_keys(config.bands, config.rows)
    return keys


def cluster_offline(records: Iterable[dict], config: DedupConfig = DedupConfig()) -> list[dict]:
    """The offline path (``newsingest dedup``): records in input order, first seen founds a cluster.

    The same buckets and verdicts as the Beam transform, with the input position as event time.
    """
    hasher = MinHasher(config)
    buckets: dict[str, Bucket] = {}
    verdicts: dict[str, Verdict] = {}
    out: list[dict] = []
    for pos, rec in enumerate(records):
        rec = dict(rec)
        text = rec.get("text") or ""
        rid = rec.get("id") or content_hash(text)[:32]
        rec["id"] = rid
        sig = hasher.signature(text)
        chash = content_hash(text)
        if rid in verdicts:  # the same article again
            verdict = Verdict(verdicts[rid].cluster_id, rid, 1.0)
        else:
            probe = Probe(rid, pos, sig.compact(config.sig_bits), sig.size)
            edges = []
            for key in _keys(sig, chash, len(tokens(text)), config):
                bucket = buckets.setdefault(key, Bucket(exact=key.startswith("h:")))
                p = probe._replace(sig=b"") if bucket.exact else probe
                edges += [e for to, e in bucket.probe(p, config) if to == rid]
            verdict = verdicts[rid] = decide(rid, pos, edges)
        rec["cluster_id"], rec["duplicate_of"], rec["similarity"] = verdict
        out.append(rec)
    return out


# ---- Beam ------------------------------------------------------------------------------------

_REC, _ANSWER, _EDGE = "r", "a", "e"  # the record; a band's answer to its probe; a later probe's news


def _record_micros(record: dict) -> int:
    for value in (record.get("published_at"), record.get("fetched_at")):
        if value:
            try:
                when = dt.datetime.fromisoformat(value)
            except (TypeError, ValueError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            return Timestamp.from_utc_datetime(when.astimezone(dt.timezone.utc)).micros
    return 0


def _event_micros(ts, record: dict) -> int:
    """The element's timestamp, or the record's own times when the element has none (batch)."""
    if isinstance(ts, Timestamp) and MIN_TIMESTAMP < ts < MAX_TIMESTAMP:
        return ts.micros
    return _record_micros(record)


def _timer_at(micros: int) -> Timestamp:
    return Timestamp(micros=max(micros, 0))


class _Sign(beam.DoFn):
    """Adds content hash and signature; emits the record to its article key and band probes."""

    PROBES = "probes"

    def __init__(self, config: DedupConfig):
        self.config = config
        self.probes = Metrics.counter("dedup", "band_probes")

    def setup(self):
        self.hasher = MinHasher(self.config)

    def process(self, record: dict, ts=beam.DoFn.TimestampParam):
        text = record.get("text") or ""
        sig = self.hasher.signature(text)
        chash = content_hash(text)
        micros = _event_micros(ts, record)
        record = dict(record)
        record["dedup"] = {"content_hash": chash, "signature_digest": sig.digest(),
                           "cluster_id": record["id"], "duplicate_of": None, "similarity": None}
        keys = _keys(sig, chash, len(tokens(text)), self.config)
        yield (record["id"], (_REC, micros, len(keys), record))
        probe = Probe(record["id"], micros, sig.compact(self.config.sig_bits), sig.size)
        for key in keys:
            self.probes.inc()
            yield beam.pvalue.TaggedOutput(self.PROBES, (key, probe._replace(sig=b"") if key.startswith("h:") else probe))


class _BandIndex(beam.DoFn):
    """Keyed by band (or exact hash): a :class:`Bucket` in state, answering verified pairs both ways.

    One watermark timer per key: it marks members released once the watermark passes them, and
    drops members older than the TTL; the key's state is gone when its last member expires.
    """

    BUCKET = userstate.ReadModifyWriteStateSpec("bucket", coders.PickleCoder())  # (members, armed tick)
    TICK = userstate.TimerSpec("tick", TimeDomain.WATERMARK)

    def __init__(self, config: DedupConfig):
        self.config = config
        self.pairs = Metrics.counter("dedup", "verified_pairs")
        self.key_size = Metrics.distribution("dedup", "band_key_size")
        self.expired = Metrics.counter("dedup", "band_members_expired")  # past the TTL (at once: event times far behind)

    def process(self, element, state=beam.DoFn.StateParam(BUCKET), tick=beam.DoFn.TimerParam(TICK)):
        key, probe = element
        members, armed = state.read() or ((), None)
        bucket = Bucket(members, exact=key.startswith("h:"))
        edges = bucket.probe(Probe._make(probe), self.config)
        state.write((bucket.members, self._arm(bucket, armed, tick)))  # one state write per probe
        self.key_size.update(len(bucket.members))
        self.pairs.inc(len(edges) // 2)
        yield (probe.id, (_ANSWER, [edge for to, edge in edges if to == probe.id]))
        for to, edge in edges:
            if to != probe.id:
                yield (to, (_EDGE, edge))

    @userstate.on_timer(TICK)
    def on_tick(self, state=beam.DoFn.StateParam(BUCKET), tick=beam.DoFn.TimerParam(TICK),
                ts=beam.DoFn.TimestampParam):
        members, _ = state.read() or ((), None)
        bucket = Bucket(members)
        bucket.release(ts.micros)
        bucket.expire(ts.micros, self.config.ttl_micros)
        self.expired.inc(len(members) - len(bucket.members))
        if bucket.members:
            state.write((bucket.members, self._arm(bucket, None, tick)))
        else:
            state.clear()

    def _arm(self, bucket: Bucket, armed: Optional[int], tick) -> Optional[int]:
        """Sets the tick to the bucket's next event if that is sooner; returns the armed time."""
        when = bucket.next_event(self.config.ttl_micros)
        if when is not None and (armed is None or when < armed):
            tick.set(_timer_at(when))
            return when
        return armed


class _Decide(beam.DoFn):
    """Keyed by article id: combines the band answers of one article and emits it with its verdict.

    The verdict waits until the watermark passes the article's event time (every article earlier
    in event time has then been seen) and until every band it probed has answered (a late article's
    timer fires at once, before its answers are in). It is kept, small, until the TTL, so the same
    article arriving again is a duplicate of itself, emitted at once.
    """

    RECORDS = userstate.BagStateSpec("records", coders.PickleCoder())
    EDGES = userstate.BagStateSpec("edges", coders.PickleCoder())
    PROGRESS = userstate.ReadModifyWriteStateSpec("progress", coders.PickleCoder())  # [expected, answered, due]
    VERDICT = userstate.ReadModifyWriteStateSpec("verdict", coders.PickleCoder())
    NEXT = userstate.ReadModifyWriteStateSpec("next", coders.VarIntCoder())
    TICK = userstate.TimerSpec("tick", TimeDomain.WATERMARK)

    def __init__(self, config: DedupConfig):
        self.config = config
        self.originals = Metrics.counter("dedup", "originals")
        self.duplicates = Metrics.counter("dedup", "duplicates")

    def process(self, element, records=beam.DoFn.StateParam(RECORDS), edges=beam.DoFn.StateParam(EDGES),
                progress=beam.DoFn.StateParam(PROGRESS), verdict=beam.DoFn.StateParam(VERDICT),
                nxt=beam.DoFn.StateParam(NEXT), tick=beam.DoFn.TimerParam(TICK)):
        rid, (kind, *payload) = element
        decided = verdict.read()
        if kind == _REC:
            micros, n_keys, record = payload
            if decided is not None:  # the same canonical URL again, after the verdict
                self.duplicates.inc()
                yield _stamped(record, Verdict(decided[0].cluster_id, rid, 1.0))
                return
            records.add((micros, record))
            expected, answered, due = progress.read() or (0, 0, False)
            progress.write((expected + n_keys, answered, due))
            self._arm(micros, nxt, tick)
        elif decided is not None:
            return  # news about a later copy: this article's verdict is out
        elif kind == _ANSWER:
            for edge in payload[0]:
                edges.add(Edge._make(edge))
            expected, answered, due = progress.read() or (0, 0, False)
            progress.write((expected, answered + 1, due))
            if due and answered + 1 >= expected:
                yield from self._decide(records, edges, progress, verdict, nxt, tick)
        else:
            edge = Edge._make(payload[0])
            edges.add(edge)
            # until the record is here, keep the news no longer than the TTL
            self._arm(edge.micros + self.config.ttl_micros, nxt, tick, only_if_empty=True)

    @userstate.on_timer(TICK)
    def on_tick(self, records=beam.DoFn.StateParam(RECORDS), edges=beam.DoFn.StateParam(EDGES),
                progress=beam.DoFn.StateParam(PROGRESS), verdict=beam.DoFn.StateParam(VERDICT),
                nxt=beam.DoFn.StateParam(NEXT), tick=beam.DoFn.TimerParam(TICK)):
        nxt.clear()
        if verdict.read() is not None:  # the TTL is over
            verdict.clear()
            return
        state = progress.read()
        if state is None:  # news for an article that never came, or is long gone
            edges.clear()
            return
        expected, answered, _ = state
        progress.write((expected, answered, True))
        if answered >= expected:
            yield from self._decide(records, edges, progress, verdict, nxt, tick)

    def _decide(self, records, edges, progress, verdict, nxt, tick):
        pending = sorted(records.read(), key=lambda mr: mr[0])
        micros, first = pending[0]
        rid = first["id"]
        v = decide(rid, micros, edges.read())
        records.clear()
        edges.clear()
        progress.clear()
        (self.duplicates if v.duplicate_of else self.originals).inc()
        yield _stamped(first, v)
        for _, again in pending[1:]:  # the same canonical URL twice before the verdict
            self.duplicates.inc()
            yield _stamped(again, Verdict(v.cluster_id, rid, 1.0))
        verdict.write((v, micros))
        nxt.clear()
        self._arm(micros + self.config.ttl_micros, nxt, tick)

    @staticmethod
    def _arm(when: int, nxt, tick, only_if_empty: bool = False) -> None:
        current = nxt.read()
        if current is None or (not only_if_empty and when < current):
            nxt.write(when)
            tick.set(_timer_at(when))


def _stamped(record: dict, v: Verdict) -> dict:
    return {**record, "dedup": {**record["dedup"], "cluster_id": v.cluster_id, "duplicate_of": v.duplicate_of,
                                "similarity": v.similarity}}


class Deduplicate(beam.PTransform):
    """Articles in; one output of originals (``main``) and one of later copies (``duplicates``).

    Records need ``id`` and ``text``; their element timestamps are their event time (when they have
    none, as in a plain batch ``Create``, ``published_at`` or ``fetched_at`` is used).
    """

    def __init__(self, config: DedupConfig = DedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, articles):
        signed = articles | "Sign" >> beam.ParDo(_Sign(self.config)).with_outputs(_Sign.PROBES, main="records")
        answers = (signed[_Sign.PROBES] | "KeyProbes" >> _keyed()
                   | "BandIndex" >> beam.ParDo(_BandIndex(self.config)))
        decided = ((signed.records, answers) | "Merge" >> beam.Flatten() | "KeyArticles" >> _keyed()
                   | "Decide" >> beam.ParDo(_Decide(self.config)))
        return decided | "Split" >> beam.Partition(lambda r, n: 1 if r["dedup"]["duplicate_of"] else 0, 2)


def _keyed() -> beam.PTransform:
    """Declares string keys, so that stateful steps get a deterministic key coder."""
    return beam.Map(lambda kv: kv).with_output_types(Tuple[str, Any])


def config_fields() -> set[str]:
    """The YAML keys ``dedup:`` accepts (pipelines/config.py checks them by field name)."""
    return {f.name for f in dataclasses.fields(DedupConfig)}
