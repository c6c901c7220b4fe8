"""Deduplication: canonical URLs, exact content hashes and near-duplicate story clusters.

Pure functions (canonical URLs, normalised text, MinHash signatures, similarity) sit at the top;
the Beam transform :class:`Deduplicate` below partitions the work by LSH band so that no worker
holds every signature: each band key keeps the signatures it has seen in keyed state (bounded by an
event-time TTL and a size cap), answers candidate pairs verified by estimated Jaccard similarity or
containment (a trimmed copy is contained in its original), and a per-article step combines those
answers. The earliest article of a cluster, by publication time, founds it: ``cluster_id`` is its
id and later members carry ``duplicate_of`` and go to the duplicates output.
"""
from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Optional
from urllib.parse import urlsplit, urlunsplit

import apache_beam as beam
import numpy as np
from apache_beam.coders import coders
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from courlan import normalize_url

_WORD = re.compile(r"\w+", re.U)
_MERSENNE = np.uint64((1 << 61) - 1)
_AMP = re.compile(r"(?:/amp/?$|/amp(?=/)|\.amp(?=\.html?$|$)|[?&](?:amp|outputType=amp)(?:=[^&]*)?)", re.I)


@dataclass(frozen=True)
class DedupConfig:
    shingle: int = 3  # words per shingle
    num_perm: int = 128
    bands: int = 32  # rows per band = num_perm // bands
    jaccard: float = 0.5  # verified near-duplicate above this estimated Jaccard similarity
    containment: float = 0.8  # ... or when this share of the smaller article is in the larger
    min_tokens: int = 20  # shorter texts are only matched exactly
    ttl_days: float = 7.0
    max_per_key: int = 1000


def canonical_url(url: str) -> str:
    """Tracking parameters, fragments, host case and default ports removed; AMP paths folded."""
    try:
        normal = normalize_url(url.strip(), strict=False)
    except (ValueError, AttributeError):
        normal = url.strip()
    parts = urlsplit(normal)
    path = _AMP.sub("", parts.path) or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def article_id(canonical: str) -> str:
    """Stable id of an article: a hash of its canonical URL (also the Kafka key)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def tokens(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(tokens(text)).encode("utf-8")).hexdigest()


@dataclass
class Signature:
    values: np.ndarray  # uint64[num_perm]
    size: int  # number of distinct shingles

    def digest(self) -> str:
        return hashlib.sha1(self.values.tobytes()).hexdigest()

    def band_keys(self, bands: int) -> list[str]:
        rows = len(self.values) // bands
        return [f"b{i}:{hashlib.blake2b(self.values[i * rows:(i + 1) * rows].tobytes(), digest_size=8).hexdigest()}"
                for i in range(bands)]

    def to_bytes(self) -> bytes:
        return struct.pack("<I", self.size) + self.values.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Signature":
        return cls(np.frombuffer(data[4:], dtype="<u8"), struct.unpack("<I", data[:4])[0])


class MinHasher:
    """MinHash over word shingles with numpy universal hashing (one vectorised pass per text)."""

    def __init__(self, config: DedupConfig = DedupConfig(), seed: int = 1):
        self.config = config
        rng = np.random.RandomState(seed)
        self.a = rng.randint(1, 1 << 61, size=config.num_perm, dtype=np.uint64)
        self.b = rng.randint(0, 1 << 61, size=config.num_perm, dtype=np.uint64)

    def shingles(self, text: str) -> set[int]:
        toks = tokens(text)
        k = self.config.shingle
        if len(toks) < k:
            return {hash_token(" ".join(toks))} if toks else set()
        return {hash_token(" ".join(toks[i:i + k])) for i in range(len(toks) - k + 1)}

    def signature(self, text: str) -> Signature:
        sh = self.shingles(text)
        if not sh:
            return Signature(np.full(self.config.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64), 0)
        x = np.fromiter(sh, dtype=np.uint64, count=len(sh)) % _MERSENNE
        # (a*x + b) mod p without overflow: split a into 31-bit halves
        hashed = (_mulmod(self.a[:, None], x[None, :]) + self.b[:, None]) % _MERSENNE
        return Signature(hashed.min(axis=1), len(sh))


def hash_token(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def _mulmod(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(a * x) mod 2^61-1 for uint64 arrays, exact, in numpy."""
    a_hi, a_lo = a >> np.uint64(31), a & np.uint64((1 << 31) - 1)
    x_hi, x_lo = x >> np.uint64(30), x & np.uint64((1 << 30) - 1)
    # a*x = (a_hi*2^31 + a_lo) * (x_hi*2^30 + x_lo)
    term = (a_hi * x_hi) % _MERSENNE  # * 2^61 == * 1 (mod p)
    term = (term + ((a_hi * x_lo) % _MERSENNE << np.uint64(31)) % _MERSENNE) % _MERSENNE
    term = (term + ((a_lo * x_hi) % _MERSENNE << np.uint64(30)) % _MERSENNE) % _MERSENNE
    return (term + (a_lo * x_lo) % _MERSENNE) % _MERSENNE


def similarity(a: Signature, b: Signature) -> tuple[float, float]:
    """(estimated Jaccard, estimated containment of the smaller in the larger)."""
    if not a.size or not b.size:
        return 0.0, 0.0
    j = float(np.mean(a.values == b.values))
    inter = j / (1 + j) * (a.size + b.size)
    return j, min(1.0, inter / min(a.size, b.size))


def is_near_duplicate(a: Signature, b: Signature, config: DedupConfig) -> Optional[float]:
    """The similarity that makes ``a`` and ``b`` one story, or None."""
    if min(a.size, b.size) < config.min_tokens:
        return None
    j, c = similarity(a, b)
    if j >= config.jaccard or c >= config.containment:
        return max(j, c)
    return None


def order_key(record: dict) -> tuple[str, str, str]:
    """Which of two copies came first: publication time, then fetch time, then id."""
    return (record.get("published_at") or record["fetched_at"], record["fetched_at"], record["id"])


def cluster_offline(records: Iterable[dict], config: DedupConfig = DedupConfig()) -> list[dict]:
    """The offline path (``newsingest dedup``): records in input order, first seen founds a cluster.

    Same signatures and verification as the Beam transform; an in-memory LSH index by band.
    """
    hasher = MinHasher(config)
    index: dict[str, list[int]] = {}
    sigs: list[Signature] = []
    hashes: dict[str, int] = {}
    out: list[dict] = []
    for rec in records:
        rec = dict(rec)
        text = rec.get("text") or ""
        rid = rec.get("id") or article_id(text)
        sig = hasher.signature(text)
        chash = content_hash(text)
        match, sim = None, None
        if chash in hashes:
            match, sim = hashes[chash], 1.0
        else:
            seen: set[int] = set()
            for key in sig.band_keys(config.bands):
                for idx in index.get(key, ()):
                    if idx in seen:
                        continue
                    seen.add(idx)
                    s = is_near_duplicate(sig, sigs[idx], config)
                    if s is not None and (sim is None or s > sim):
                        match, sim = idx, s
        pos = len(out)
        if match is None:
            rec["cluster_id"] = rid
            rec["duplicate_of"] = None
        else:
            rec["cluster_id"] = out[match]["cluster_id"]
            rec["duplicate_of"] = out[match]["id"] if out[match].get("id") else out[match]["cluster_id"]
        rec.setdefault("id", rid)
        rec["similarity"] = sim
        out.append(rec)
        sigs.append(sig)
        hashes.setdefault(chash, pos)
        for key in sig.band_keys(config.bands):
            index.setdefault(key, []).append(pos)
    return out


# ---- Beam ------------------------------------------------------------------------------------

class _Signed(beam.DoFn):
    """Adds content hash and signature; emits the record keyed by id and its band probes."""

    PROBES = "probes"

    def __init__(self, config: DedupConfig):
        self.config = config

    def setup(self):
        self.hasher = MinHasher(self.config)

    def process(self, record: dict):
        sig = self.hasher.signature(record["text"])
        chash = content_hash(record["text"])
        record = dict(record)
        record["dedup"] = {"content_hash": chash, "signature_digest": sig.digest(),
                           "cluster_id": record["id"], "duplicate_of": None, "similarity": None}
        yield (record["id"], record)
        probe = (record["id"], order_key(record), sig.to_bytes())
        yield beam.pvalue.TaggedOutput(self.PROBES, ("h:" + chash, probe))
        if sig.size >= self.config.min_tokens:
            for key in sig.band_keys(self.config.bands):
                yield beam.pvalue.TaggedOutput(self.PROBES, (key, probe))


class _BandIndex(beam.DoFn):
    """Keyed by band (or content hash): remembers probes, answers verified pairs both ways.

    Each answer goes to *both* articles of a pair, so the per-article step sees every verified
    neighbour whichever arrived first at this key. State is bounded by an event-time TTL timer
    and a size cap per key.
    """

    SEEN = userstate.BagStateSpec("seen", coders.PickleCoder())
    EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, config: DedupConfig):
        self.config = config
        self.ttl = Duration(seconds=int(config.ttl_days * 86400))

    def process(self, element, seen=beam.DoFn.StateParam(SEEN), expiry=beam.DoFn.TimerParam(EXPIRY),
                ts=beam.DoFn.TimestampParam):
        key, (rid, order, sig_bytes) = element
        members = list(seen.read())
        exact = key.startswith("h:")
        sig = None if exact else Signature.from_bytes(sig_bytes)
        for other_id, other_order, other_bytes in members:
            if other_id == rid:
                continue
            if exact:
                sim = 1.0
            else:
                sim = is_near_duplicate(sig, Signature.from_bytes(other_bytes), self.config)
                if sim is None:
                    continue
            yield (rid, (other_id, other_order, sim))
            yield (other_id, (rid, order, sim))
        if len(members) >= self.config.max_per_key:
            seen.clear()
            for m in members[-(self.config.max_per_key - 1):]:
                seen.add(m)
        seen.add((rid, order, b"" if exact else sig_bytes))
        if isinstance(ts, Timestamp) and ts.micros > Timestamp.of(0).micros and ts < Timestamp.of(2**40):
            expiry.set(ts + self.ttl)

    @userstate.on_timer(EXPIRY)
    def expire(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


def _decide(element):
    """Per article: the earliest verified neighbour (if earlier than the article) is its original."""
    rid, grouped = element
    records = sorted(grouped["record"], key=order_key)
    if not records:
        return
    edges: dict[str, tuple[tuple, float]] = {}
    for other_id, other_order, sim in grouped["edges"]:
        best = edges.get(other_id, (tuple(other_order), 0.0))[1]
        edges[other_id] = (tuple(other_order), max(sim, best))
    first = records[0]
    earlier = sorted((o, oid, s) for oid, (o, s) in edges.items() if o < order_key(first))
    rec = dict(first)
    if earlier:
        _, original, sim = earlier[0]
        rec["dedup"] = {**rec["dedup"], "cluster_id": original, "duplicate_of": original, "similarity": round(sim, 4)}
    yield rec
    for later in records[1:]:  # the same canonical URL reached us twice
        yield {**later, "dedup": {**later["dedup"], "cluster_id": rec["dedup"]["cluster_id"],
                                  "duplicate_of": rid, "similarity": 1.0}}


class Deduplicate(beam.PTransform):
    """Articles in; one output of originals (``main``) and one of later copies (``duplicates``)."""

    def __init__(self, config: DedupConfig = DedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, articles):
        signed = articles | "Sign" >> beam.ParDo(_Signed(self.config)).with_outputs(_Signed.PROBES, main="records")
        edges = signed[_Signed.PROBES] | "BandIndex" >> beam.ParDo(_BandIndex(self.config)).with_input_types(tuple[str, tuple])
        decided = (
            {"record": signed.records, "edges": edges}
            | "JoinById" >> beam.CoGroupByKey()
            | "Decide" >> beam.FlatMap(_decide)
        )
        return decided | "Split" >> beam.Partition(lambda r, n: 1 if r["dedup"]["duplicate_of"] else 0, 2)
