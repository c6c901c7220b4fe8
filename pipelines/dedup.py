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

The pure-Python core, :class:`Index` (the articles seen within the TTL, looked up by band key and
content hash, and the verdict on a new one), is shared by the offline path :func:`cluster_offline`
and the Beam transform :class:`Deduplicate`, which runs it in two steps:

- ``Sign``: MinHash once per article (in parallel); the record and its index member go to the one
  index key.
- ``Judge``: the index in keyed state, as an append-only log of members (one blob per timer), with
  the decoded index kept in memory and checked against the log before use. Articles wait until the
  watermark passes their event time, then are judged in event-time order.

An earlier design kept one state key per LSH band (65 keys and about 200 state operations per
article): on the DirectRunner that was 400 ms of runner work per article (benchmarks/throughput.py).

Semantics: the first article seen founds the cluster (``cluster_id`` is its id); later members
carry ``duplicate_of`` (their earliest verified predecessor) and go to the duplicates output.
"First" is event time for every article that arrives before the watermark passes it, so a copy that
reaches us before its original in processing time still becomes the duplicate. An article that
arrives late (behind what was already judged) cannot take the place of a copy that was already
emitted: it is judged at once, after everything judged before it. Articles older than the TTL are
forgotten: a copy arriving after it founds a new cluster.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import pickle
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
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp
from courlan import normalize_url

from pipelines.statecache import cheap_state_weighing

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
    max_per_key: int = 500  # ids one band key (or content hash) lists, the oldest dropped first

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
    return _hash_tokens(tokens(text))


def _hash_tokens(toks: list[str]) -> str:
    return hashlib.sha256(" ".join(toks).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1 << 15)  # ~32k words, a few MB: the common vocabulary
def hash_token(s: str) -> int:
    """64-bit hash of a word, stable across processes; memoised, as news vocabulary repeats."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class Signature:
    values: np.ndarray  # uint64[num_perm]
    size: int  # number of distinct shingles

    def digest(self) -> str:
        return hashlib.sha1(self.values.tobytes()).hexdigest()

    def band_keys(self, bands: int, rows: int) -> np.ndarray:
        """One 64-bit key per LSH band: its ``rows`` values and its position mixed (uint64[bands])."""
        values = self.values[:bands * rows].reshape(bands, rows)
        keys = np.arange(1, bands + 1, dtype=np.uint64) * _MIX[-1]
        for r in range(rows):
            keys = (keys ^ values[:, r]) * _MIX[r]  # wraps modulo 2^64
        return keys ^ (keys >> np.uint64(31))

    def compact(self, bits: int) -> bytes:
        """The low ``bits`` of each value: what state keeps for verification (b-bit MinHash)."""
        return (self.values & np.uint64((1 << bits) - 1)).astype(np.uint8 if bits == 8 else "<u2").tobytes()


_SIGN_BLOCK = 256  # shingles per block of the signature matrix: 256 KB of scratch per hasher


class MinHasher:
    """MinHash over word shingles, one vectorised numpy pass per text.

    Shingles are first hashed to 64 bits (blake2b), so a multiply-add modulo 2^64 with odd random
    multipliers (multiply-shift hashing, compared on the high bits) is a fine permutation family,
    and ten times cheaper than arithmetic modulo a prime. One instance per thread: it keeps a
    small scratch matrix between calls.
    """

    def __init__(self, config: DedupConfig = DedupConfig(), seed: int = 1):
        self.config = config
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 1 << 63, size=config.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 1 << 63, size=config.num_perm, dtype=np.uint64)
        self._scratch = np.empty((config.num_perm, 0), dtype=np.uint64)

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

    def fingerprint(self, text: str) -> tuple[Signature, str, int]:
        """(signature, content hash, token count) of ``text``, tokenised once."""
        toks = tokens(text)
        return self.signature_of(self.shingles(toks)), _hash_tokens(toks), len(toks)

    def signature_of(self, shingle_hashes: np.ndarray) -> Signature:
        """Signature of a set of distinct 64-bit shingle hashes (all values at the maximum when empty)."""
        # In place, in a reused matrix of at most num_perm x _SIGN_BLOCK: 5-10x faster than one
        # expression, whose two fresh num_perm x n temporaries (over the workers' fixed mmap
        # threshold) are faulted in on every call. Block by block, so that the scratch stays small
        # in each of a worker's DoFn instances (larger blocks measured no faster).
        width = max(1, min(len(shingle_hashes), _SIGN_BLOCK))
        if self._scratch.shape[1] < width:
            self._scratch = np.empty((self.config.num_perm, width), dtype=np.uint64)
        values = np.full(self.config.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        for start in range(0, len(shingle_hashes), width):
            block = shingle_hashes[start:start + width]
            hashed = self._scratch[:, :len(block)]
            np.multiply(self.a[:, None], block[None, :], out=hashed)
            hashed += self.b[:, None]  # both wrap modulo 2^64
            np.minimum(values, hashed.min(axis=1), out=values)
        return Signature(values, len(shingle_hashes))


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


# ---- the shared core: the index of recent articles ------------------------------------------

class Member(NamedTuple):
    """One article in the index: what verification and verdicts need, nothing of the record."""

    id: str
    micros: int  # event time, the order of "first"
    sig: bytes  # compact b-bit signature
    size: int  # distinct shingles
    bands: bytes  # LSH band keys, 8 bytes each; empty for short texts (matched only exactly)
    chash: str  # content hash
    cluster: tuple[int, str]  # (micros, id) of the cluster's founder


class Verdict(NamedTuple):
    cluster_id: str
    duplicate_of: Optional[str]
    similarity: Optional[float]


def _order(m: Member) -> tuple[int, str]:
    return (m.micros, m.id)


class Index:
    """The articles seen within the TTL, looked up by LSH band key and by exact content hash.

    Articles are judged in the order they are added: every member is an earlier article, so the
    earliest verified member is the original and the cluster is the earliest founder any verified
    member knows. A band key lists the ids that share it (a bare id for one, a list for more; most
    keys hold one), at most ``max_per_key`` of them, the oldest dropped first.
    """

    def __init__(self, config: DedupConfig = DedupConfig()):
        self.config = config
        self.members: dict[str, Member] = {}
        self._keys: dict[Any, Any] = {}  # band key (int) or content hash (str) -> id or [ids]

    def __len__(self) -> int:
        return len(self.members)

    @staticmethod
    def lookup_keys(m: Member) -> list:
        return [m.chash, *np.frombuffer(m.bands, dtype="<u8").tolist()] if m.bands else [m.chash]

    def judge(self, m: Member) -> tuple[Verdict, Member]:
        """The verdict on ``m`` against the index, and ``m`` with its cluster (not yet added)."""
        known = self.members.get(m.id)
        if known is not None:  # the same article (canonical URL) again
            return Verdict(known.cluster[1], m.id, 1.0), known
        seen: set[str] = set()
        matches: list[tuple[Member, float]] = []
        for key in self.lookup_keys(m):
            found = self._keys.get(key)
            for other in ((found,) if isinstance(found, str) else found or ()):
                if other in seen:
                    continue
                seen.add(other)
                o = self.members[other]
                sim = 1.0 if o.chash == m.chash else verify(m.sig, m.size, o.sig, o.size, self.config)
                if sim is not None:
                    matches.append((o, sim))
        if not matches:
            return Verdict(m.id, None, None), m._replace(cluster=(m.micros, m.id))
        original, sim = min(matches, key=lambda ms: _order(ms[0]))
        cluster = min(o.cluster for o, _ in matches)
        return Verdict(cluster[1], original.id, sim), m._replace(cluster=cluster)

    def add(self, m: Member) -> None:
        if m.id in self.members:
            return
        self.members[m.id] = m
        cap = self.config.max_per_key
        for key in self.lookup_keys(m):
            found = self._keys.get(key)
            if found is None:
                self._keys[key] = m.id
            elif isinstance(found, str):
                self._keys[key] = [found, m.id]
            else:
                found.append(m.id)
                if len(found) > cap:
                    found.sort(key=lambda i: _order(self.members[i]))
                    del found[:len(found) - cap]

    def expire(self, until_micros: int) -> int:
        """Forget the members older than the TTL at ``until_micros``; returns how many went."""
        ttl = self.config.ttl_micros
        old = [m.id for m in self.members.values() if m.micros + ttl <= until_micros]
        for rid in old:
            self.discard(rid)
        return len(old)

    def discard(self, rid: str) -> None:
        m = self.members.pop(rid, None)
        for key in self.lookup_keys(m) if m else ():
            found = self._keys.get(key)
            if found == rid:
                del self._keys[key]
            elif isinstance(found, list) and rid in found:
                found.remove(rid)
                if len(found) == 1:
                    self._keys[key] = found[0]

    def oldest_micros(self) -> Optional[int]:
        return min((m.micros for m in self.members.values()), default=None)


def member(rid: str, micros: int, sig: Signature, chash: str, n_tokens: int, config: DedupConfig) -> Member:
    """An article as the index keeps it (its cluster is set when it is judged)."""
    bands = sig.band_keys(config.bands, config.rows).tobytes() if n_tokens and sig.size >= config.min_tokens else b""
    return Member(rid, micros, sig.compact(config.sig_bits), sig.size, bands, chash, (micros, rid))


def cluster_offline(records: Iterable[dict], config: DedupConfig = DedupConfig()) -> list[dict]:
    """The offline path (``newsingest dedup``): records in input order, first seen founds a cluster.

    The same index and verdicts as the Beam transform, with the input position as event time.
    """
    hasher = MinHasher(config)
    index = Index(config)
    out: list[dict] = []
    for pos, rec in enumerate(records):
        rec = dict(rec)
        text = rec.get("text") or ""
        rec["id"] = rec.get("id") or content_hash(text)[:32]
        sig, chash, n_tokens = hasher.fingerprint(text)
        verdict, m = index.judge(member(rec["id"], pos, sig, chash, n_tokens, config))
        index.add(m)
        rec["cluster_id"], rec["duplicate_of"], rec["similarity"] = verdict
        out.append(rec)
    return out


# ---- Beam ------------------------------------------------------------------------------------

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
    """MinHash once per article: the record, with its index member, to the one index key."""

    def __init__(self, config: DedupConfig):
        self.config = config

    def setup(self):
        self.hasher = MinHasher(self.config)

    def process(self, record: dict, ts=beam.DoFn.TimestampParam):
        sig, chash, n_tokens = self.hasher.fingerprint(record.get("text") or "")
        micros = _event_micros(ts, record)
        record = {**record, "dedup": {"content_hash": chash, "signature_digest": sig.digest(),
                                      "cluster_id": record["id"], "duplicate_of": None, "similarity": None}}
        yield (_INDEX_KEY, (record, member(record["id"], micros, sig, chash, n_tokens, self.config)))


_INDEX_KEY = "index"
_BLOB_MEMBERS = 10_000  # members per blob when expiry rewrites the log
_NONCE = 8  # random bytes before each blob: a log of the same length written elsewhere is told apart


def _blob(members: list) -> bytes:
    return os.urandom(_NONCE) + pickle.dumps(members, protocol=pickle.HIGHEST_PROTOCOL)


class _Judge(beam.DoFn):
    """The index of recent articles in keyed state, and the verdicts, in event-time order.

    Articles wait in ``PENDING`` until the watermark passes their event time (every earlier article
    has then arrived), and are judged in event-time order; one behind what was already released
    (late) is judged at once, after everything judged before it. In a bounded (batch) run all input
    precedes the first timer, so the first timer judges everything.

    The index is an append-only log in ``LOG``: each timer or late article appends one blob of the
    members it added; expiry rewrites the log as one blob at most once per TTL/24, so members live
    between one TTL and 25/24 of it. Each worker keeps the decoded index in memory and checks it
    against the log's version kept in ``META`` (generation, appends, the last blob's random nonce),
    written in the same bundle as the log: a retried bundle, a restore or a moved key finds a
    mismatch and rebuilds the index from the log. The log itself is read only then: reading it on
    every timer cost a full fetch from runners that hand out a state cache token per bundle (Prism),
    and filled the SDK's state cache with copies of it.
    """

    PENDING = userstate.BagStateSpec("pending", coders.PickleCoder())  # (record, member)
    LOG = userstate.BagStateSpec("log", coders.BytesCoder())  # pickled lists of members
    META = userstate.ReadModifyWriteStateSpec("meta", coders.PickleCoder())  # _Meta
    TICK = userstate.TimerSpec("tick", TimeDomain.WATERMARK)

    def __init__(self, config: DedupConfig, bounded: bool):
        self.config = config
        self.bounded = bounded
        self.originals = Metrics.counter("dedup", "originals")
        self.duplicates = Metrics.counter("dedup", "duplicates")
        self.expired = Metrics.counter("dedup", "members_expired")
        self.index_size = Metrics.distribution("dedup", "index_members")

    def setup(self):
        cheap_state_weighing()
        self._index: Optional[Index] = None
        self._version: Optional[tuple] = None  # the _Meta.log_version() the index reflects

    def process(self, element, pending=beam.DoFn.StateParam(PENDING), log=beam.DoFn.StateParam(LOG),
                meta=beam.DoFn.StateParam(META), tick=beam.DoFn.TimerParam(TICK)):
        record, m = element[1]
        state = meta.read() or _Meta()
        if m.micros <= state.released:  # behind what was released: judged now, after all of it
            judged, state = self._judge(self._load(log, state), [(record, m)], log, state)
            yield from judged
            expiry = m.micros + self.config.ttl_micros
            if expiry < state.next_expiry:
                state = self._arm(state._replace(next_expiry=expiry), expiry, tick)
        else:
            pending.add((record, m))
            state = self._arm(state, m.micros, tick)
        meta.write(state)

    @userstate.on_timer(TICK)
    def on_tick(self, pending=beam.DoFn.StateParam(PENDING), log=beam.DoFn.StateParam(LOG),
                meta=beam.DoFn.StateParam(META), tick=beam.DoFn.TimerParam(TICK), ts=beam.DoFn.TimestampParam):
        now = ts.micros
        state = (meta.read() or _Meta())._replace(armed=None)  # the tick fired: nothing is armed
        index = self._load(log, state)
        due, rest = [], []
        for record, m in pending.read():
            (due if self.bounded or m.micros <= now else rest).append((record, m))
        if due:
            pending.clear()
            for item in rest:
                pending.add(item)
            state = state._replace(released=max(state.released, max(m.micros for _, m in due)))
            judged, state = self._judge(index, sorted(due, key=lambda rm: _order(rm[1])), log, state)
            yield from judged
        if now >= state.next_expiry:
            state = self._expire(index, now, log, state)
        for _, m in rest:
            state = self._arm(state, m.micros, tick)
        oldest = index.oldest_micros()
        state = state._replace(next_expiry=MAX_TIMESTAMP.micros if oldest is None else
                               max(oldest + self.config.ttl_micros, now + max(self.config.ttl_micros // 24, 1)))
        meta.write(self._arm(state, state.next_expiry, tick) if oldest is not None else state)

    def _judge(self, index: Index, items, log, state: "_Meta") -> tuple[list[dict], "_Meta"]:
        """Judge ``items`` in order against the index; log the new members. (The records, the new meta.)"""
        added, out = [], []
        for record, m in items:
            verdict, judged = index.judge(m)
            if judged.id not in index.members:
                index.add(judged)
                added.append(tuple(judged))
            (self.duplicates if verdict.duplicate_of else self.originals).inc()
            out.append(_stamped(record, verdict))
        self.index_size.update(len(index))
        if added:
            blob = _blob(added)
            log.add(blob)
            state = state._replace(appends=state.appends + 1, nonce=blob[:_NONCE])
            self._version = state.log_version()
        return out, state

    def _expire(self, index: Index, now: int, log, state: "_Meta") -> "_Meta":
        gone = index.expire(now)
        if not gone:
            return state
        self.expired.inc(gone)
        log.clear()
        members = [tuple(m) for m in index.members.values()]
        blobs = [_blob(members[i:i + _BLOB_MEMBERS]) for i in range(0, len(members), _BLOB_MEMBERS)]
        for blob in blobs:  # no state value grows past ~7 MB
            log.add(blob)
        state = state._replace(generation=state.generation + 1, appends=0, nonce=blobs[-1][:_NONCE] if blobs else b"")
        self._version = state.log_version()
        return state

    def _load(self, log, state: "_Meta") -> Index:
        """The in-memory index; rebuilt from the log (the only read of it) when ``state`` says it is stale."""
        if self._index is None or self._version != state.log_version():
            index = Index(self.config)
            for blob in log.read():
                for m in pickle.loads(blob[_NONCE:]):
                    index.add(Member._make(m))
            self._index, self._version = index, state.log_version()
        return self._index

    @staticmethod
    def _arm(state: "_Meta", when: int, tick) -> "_Meta":
        if state.armed is None or when < state.armed:
            tick.set(_timer_at(when))
            return state._replace(armed=when)
        return state


class _Meta(NamedTuple):
    released: int = MIN_TIMESTAMP.micros  # the latest event time judged from pending: later arrivals before it are late
    armed: Optional[int] = None  # the tick's time
    next_expiry: int = MAX_TIMESTAMP.micros  # when the oldest member leaves (checked on a tick)
    generation: int = 0  # bumped when expiry rewrites the log
    appends: int = 0  # blobs appended since
    nonce: bytes = b""  # the last blob's random prefix: a log of the same length written elsewhere differs

    def log_version(self) -> tuple:
        return self.generation, self.appends, self.nonce


def _stamped(record: dict, v: Verdict) -> dict:
    return {**record, "dedup": {**record["dedup"], "cluster_id": v.cluster_id, "duplicate_of": v.duplicate_of,
                                "similarity": v.similarity}}


class Deduplicate(beam.PTransform):
    """Articles in; one output of originals (``main``) and one of later copies (``duplicates``).

    Records need ``id`` and ``text``; their element timestamps are their event time (when they have
    none, as in a plain batch ``Create``, ``published_at`` or ``fetched_at`` is used).

    The index is one keyed state: every article meets every other in one place, with two state
    writes per bundle rather than per article and band (judging is ~0.1 ms per article; the work of
    signing runs in parallel before it). See benchmarks/dedup.py for its cost and size.
    """

    def __init__(self, config: DedupConfig = DedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, articles):
        from apache_beam.options.pipeline_options import StandardOptions

        bounded = not articles.pipeline._options.view_as(StandardOptions).streaming
        judged = (articles
                  | "Sign" >> beam.ParDo(_Sign(self.config)).with_output_types(Tuple[str, Any])
                  | "Judge" >> beam.ParDo(_Judge(self.config, bounded)))
        return judged | "Split" >> beam.Partition(lambda r, n: 1 if r["dedup"]["duplicate_of"] else 0, 2)


def config_fields() -> set[str]:
    """The YAML keys ``dedup:`` accepts (pipelines/config.py checks them by field name)."""
    return {f.name for f in dataclasses.fields(DedupConfig)}
