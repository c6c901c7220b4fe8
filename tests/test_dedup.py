"""Dedup without Beam: canonical URLs, hashes, signatures, verification, band buckets, verdicts and
the offline clustering on the dev set."""
from __future__ import annotations

import collections
import itertools
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from pipelines import dedup as dd

DEV = Path(__file__).parent / "data" / "dedup" / "aeb-dev-neardup.jsonl"


# ---- canonical URLs --------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("https://example.com/news/story?utm_source=tw&utm_medium=social&utm_campaign=x", "https://example.com/news/story"),
    ("https://example.com/news/story?UTM_Source=tw&page=2", "https://example.com/news/story?page=2"),
    ("https://example.com/a?fbclid=IwAR0abc", "https://example.com/a"),
    ("https://example.com/a?gclid=Cj0KCQ&id=7", "https://example.com/a?id=7"),
    ("https://example.com/a?mc_cid=1&mc_eid=2&igshid=3&msclkid=4", "https://example.com/a"),
    ("https://example.com/a#comments", "https://example.com/a"),
    ("https://example.com/a?b=2#section-3", "https://example.com/a?b=2"),
    ("HTTPS://WWW.Example.COM/News/Story", "https://www.example.com/News/Story"),  # the path keeps its case
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("http://example.com:8080/a", "http://example.com:8080/a"),  # not a default port
    ("https://example.com/a?z=1&a=2", "https://example.com/a?a=2&z=1"),  # one order of parameters
])
def test_canonical_url_drops_tracking_fragments_case_and_default_ports(url, expected):
    assert dd.canonical_url(url) == expected


@pytest.mark.parametrize("amp", [
    "https://example.com/2024/01/story/amp/",
    "https://example.com/2024/01/story/amp",
    "https://example.com/amp/2024/01/story",
    "https://amp.example.com/2024/01/story",
    "https://example.com/2024/01/story?amp=1",
    "https://example.com/2024/01/story?amp",
    "https://example.com/2024/01/story?outputType=amp",
    "https://www.google.com/amp/s/example.com/2024/01/story",
    "https://example-com.cdn.ampproject.org/c/s/example.com/2024/01/story",
])
def test_amp_variants_fold_to_the_article(amp):
    assert dd.canonical_url(amp) == "https://example.com/2024/01/story"


def test_amp_html_suffix_folds_to_the_html_page():
    assert dd.canonical_url("https://example.com/story.amp.html") == dd.canonical_url("https://example.com/story.html")


def test_parameters_that_name_the_article_stay():
    assert dd.canonical_url("https://example.com/article.php?id=123&output=json") == "https://example.com/article.php?id=123&output=json"
    assert dd.canonical_url("https://example.com/a?id=1") != dd.canonical_url("https://example.com/a?id=2")


def test_article_id_is_one_per_article():
    same = ["https://www.example.com/a/story/", "http://example.com/a/story", "https://example.com/a/story?utm_source=x",
            "https://amp.example.com/a/story/amp/"]
    assert len({dd.article_id(dd.canonical_url(u)) for u in same}) == 1
    assert dd.article_id(dd.canonical_url("https://example.com/a/other")) != dd.article_id(dd.canonical_url(same[0]))
    assert len(dd.article_id("https://example.com/a")) == 32


# ---- hashes, signatures, verification ----------------------------------------------------------

def test_content_hash_ignores_case_spacing_punctuation_and_unicode_forms():
    assert dd.content_hash("Kyiv, Ukraine —  the talks\nresumed.") == dd.content_hash("kyiv ukraine the talks resumed")
    assert dd.content_hash("ﬁnal") == dd.content_hash("final")  # NFKC
    assert dd.content_hash("the talks resumed") != dd.content_hash("the talks stalled")


@pytest.fixture(scope="module")
def dev():
    return [json.loads(line) for line in DEV.open(encoding="utf-8")]


@pytest.fixture(scope="module")
def hasher():
    return dd.MinHasher(dd.DedupConfig())


def _compact(hasher, text):
    sig = hasher.signature(text)
    return sig.compact(hasher.config.sig_bits), sig.size


def test_verify_accepts_a_trimmed_copy_and_rejects_other_stories(dev, hasher):
    config = hasher.config
    by_cluster = collections.defaultdict(dict)
    for r in dev:
        by_cluster[r["cluster_id"]][r["variant_type"] or "original"] = r["text"]
    cluster = next(c for c in by_cluster.values() if "trimmed" in c)
    original, trimmed = _compact(hasher, cluster["original"]), _compact(hasher, cluster["trimmed"])
    assert dd.verify(*original, *trimmed, config) is not None
    assert dd.verify(*original, *original, config) == 1.0
    unrelated = next(c["original"] for c in by_cluster.values() if c is not cluster)
    assert dd.verify(*original, *_compact(hasher, unrelated), config) is None


def test_a_paragraph_quoted_inside_a_long_update_does_not_join_two_stories(dev, hasher):
    """The quote is contained in the update, but it is a small share of it: no match."""
    stories = [r["text"] for r in dev if r["role"] == "original"]
    short = next(t for t in stories if 80 <= len(t.split()) <= 150)
    long = next(t for t in stories if len(t.split()) >= 900)
    update = long + "\n\nUPDATE: " + short
    assert dd.verify(*_compact(hasher, short), *_compact(hasher, update), hasher.config) is None
    # the same short story trimmed by a third is still one story with itself
    words = short.split()
    assert dd.verify(*_compact(hasher, short), *_compact(hasher, " ".join(words[: len(words) * 2 // 3])),
                     hasher.config) is not None


def test_short_texts_match_only_exactly(hasher):
    a, b = _compact(hasher, "Breaking: markets fall"), _compact(hasher, "Breaking: markets fall")
    assert dd.verify(*a, *b, hasher.config) is None
    m = dd.member("a", 0, hasher.signature("Breaking: markets fall"), dd.content_hash("Breaking: markets fall"), 3,
                  hasher.config)
    assert dd.Index.lookup_keys(m) == [dd.content_hash("Breaking: markets fall")]


def test_signature_is_deterministic_across_hashers():
    text = "The alliance met in Vilnius to discuss the accession of new members and the war in Ukraine " * 3
    a, b = dd.MinHasher().signature(text), dd.MinHasher().signature(text)
    assert a.digest() == b.digest()
    assert (a.band_keys(64, 2) == b.band_keys(64, 2)).all() and len(set(a.band_keys(64, 2).tolist())) == 64


def test_config_rejects_more_band_values_than_permutations():
    with pytest.raises(ValueError):
        dd.DedupConfig(num_perm=64, bands=64, rows=2)


# ---- the index and its verdicts -------------------------------------------------------------

def _exact(rid, micros, text="same text"):
    """A short article: matched only by its exact content hash."""
    return dd.Member(rid, micros, b"", 0, b"", dd.content_hash(text), (micros, rid))


def _judge_all(index, members):
    verdicts = {}
    for m in members:
        verdicts[m.id], judged = index.judge(m)
        index.add(judged)
    return verdicts


def test_the_earliest_verified_member_is_the_original_and_its_founder_the_cluster():
    index = dd.Index()
    verdicts = _judge_all(index, [_exact("a", 10), _exact("b", 20), _exact("other", 25, "another text")])
    assert verdicts["a"] == dd.Verdict("a", None, None)
    assert verdicts["b"] == dd.Verdict("a", "a", 1.0)
    assert verdicts["other"] == dd.Verdict("other", None, None)
    assert index.members["b"].cluster == (10, "a")


def test_a_late_article_joins_the_cluster_of_what_was_judged_before_it():
    """Judging order, not event time, decides: a copy judged earlier stays the founder."""
    index = dd.Index()
    verdicts = _judge_all(index, [_exact("copy", 20), _exact("orig", 10)])
    assert verdicts["copy"].duplicate_of is None
    assert verdicts["orig"] == dd.Verdict("copy", "copy", 1.0)


def test_the_same_article_again_is_a_duplicate_of_itself():
    index = dd.Index()
    _judge_all(index, [_exact("a", 10)])
    verdict, known = index.judge(_exact("a", 30))
    assert verdict == dd.Verdict("a", "a", 1.0) and known.micros == 10


def test_index_expiry_and_size_cap():
    config = dd.DedupConfig(max_per_key=3, ttl_days=1)
    index = dd.Index(config)
    _judge_all(index, [_exact(f"a{i}", i * 1000) for i in range(5)])
    key = dd.content_hash("same text")
    assert sorted(index._keys[key]) == ["a2", "a3", "a4"]  # the oldest go first
    assert index.expire(3000 + config.ttl_micros) == 4
    assert list(index.members) == ["a4"] and index._keys[key] == "a4"
    assert index.oldest_micros() == 4000


def test_near_copies_meet_through_their_bands(dev):
    config = dd.DedupConfig()
    hasher = dd.MinHasher(config)
    by_cluster = {}
    for r in dev:
        by_cluster.setdefault(r["cluster_id"], {})[r["variant_type"] or "original"] = r
    story = next(c for c in by_cluster.values() if {"original", "trimmed"} <= set(c))
    index = dd.Index(config)
    members = [dd.member(name, i, hasher.signature(story[name]["text"]), dd.content_hash(story[name]["text"]),
                         len(dd.tokens(story[name]["text"])), config) for i, name in enumerate(["original", "trimmed"])]
    assert len(members[0].bands) == 8 * config.bands
    verdicts = _judge_all(index, members)
    assert verdicts["trimmed"].duplicate_of == "original" and verdicts["trimmed"].similarity >= 0.5


# ---- offline clustering on the dev set ---------------------------------------------------------

def _pairs(labels):
    by = collections.defaultdict(list)
    for i, label in enumerate(labels):
        by[label].append(i)
    return {p for members in by.values() for p in itertools.combinations(sorted(members), 2)}


@pytest.mark.parametrize("seed", [0, 1])
def test_offline_clusters_of_the_shuffled_dev_set(dev, seed):
    records = list(dev)
    random.Random(seed).shuffle(records)
    out = dd.cluster_offline({"id": r["id"], "text": r["text"]} for r in records)
    gold, found = _pairs([r["cluster_id"] for r in records]), _pairs([r["cluster_id"] for r in out])
    tp = len(gold & found)
    precision, recall = tp / len(found), tp / len(gold)
    assert 2 * precision * recall / (precision + recall) >= 0.98
    # no two distinct stories merged: every found cluster lies inside one gold cluster
    gold_of = {r["id"]: r["cluster_id"] for r in records}
    members = collections.defaultdict(set)
    for r in out:
        members[r["cluster_id"]].add(gold_of[r["id"]])
    assert all(len(g) == 1 for g in members.values())
    # the first seen of each cluster founds it
    seen = set()
    for r in out:
        assert (r["duplicate_of"] is None) == (r["cluster_id"] not in seen and r["cluster_id"] == r["id"])
        seen.add(r["cluster_id"])


def test_offline_catches_every_exact_copy_even_short_ones(dev):
    originals = [r for r in dev if r["role"] == "original"][:20]
    records = [{"id": f"o{i}", "text": r["text"]} for i, r in enumerate(originals)]
    records += [{"id": f"c{i}", "text": "  " + r["text"].upper() + " "} for i, r in enumerate(originals)]
    records += [{"id": "s1", "text": "Live: markets fall"}, {"id": "s2", "text": "LIVE — markets fall!"}]
    out = {r["id"]: r for r in dd.cluster_offline(records)}
    for i in range(len(originals)):
        assert out[f"c{i}"]["duplicate_of"] == f"o{i}"
    assert out["s2"]["duplicate_of"] == "s1"


def test_offline_same_id_twice_is_a_duplicate_of_itself():
    out = dd.cluster_offline([{"id": "a", "text": "one text here"}, {"id": "a", "text": "another text"}])
    assert out[1]["duplicate_of"] == "a" and out[1]["cluster_id"] == "a"


# ---- the Beam step's state log ----------------------------------------------------------------

class _Bag:
    def __init__(self):
        self.items, self.reads = [], 0

    def read(self):
        self.reads += 1
        return list(self.items)

    def add(self, item):
        self.items.append(item)

    def clear(self):
        self.items = []


def test_the_worker_index_is_rebuilt_when_it_does_not_reflect_the_log():
    """A retried bundle or a moved key leaves the in-memory index ahead of or behind the log; the
    log's version is in the meta written with it, and the log is read only to rebuild."""
    judge = dd._Judge(dd.DedupConfig(ttl_days=1), bounded=False)
    judge.setup()
    log, meta0 = _Bag(), dd._Meta()
    verdicts, meta1 = judge._judge(judge._load(log, meta0), [({"id": "a", "dedup": {}}, _exact("a", 10))], log, meta0)
    assert verdicts[0]["dedup"]["duplicate_of"] is None and len(log.items) == 1 and meta1.appends == 1
    reads = log.reads
    assert judge._load(log, meta1) is judge._index and log.reads == reads  # in step: reused, the log not read
    log.items.pop()  # the bundle that wrote "a" failed: the runner dropped its log and meta writes
    assert "a" not in judge._load(log, meta0).members
    other = dd._Judge(dd.DedupConfig(ttl_days=1), bounded=False)  # another worker, the same log
    other.setup()
    _, meta_b = other._judge(other._load(log, meta0), [({"id": "b", "dedup": {}}, _exact("b", 20))], log, meta0)
    assert list(other._load(log, meta_b).members) == ["b"]
    assert list(judge._load(log, meta_b).members) == ["b"]  # back on the first worker: rebuilt
    # as many appends as the worker knows, but the last blob was written elsewhere
    judge._judge(judge._index, [({"id": "c", "dedup": {}}, _exact("c", 30, "c text"))], log, meta_b)
    log.items.pop()
    _, meta_d = other._judge(other._load(log, meta_b), [({"id": "d", "dedup": {}}, _exact("d", 40, "d text"))],
                             log, meta_b)
    assert sorted(judge._load(log, meta_d).members) == ["b", "d"]


def test_meta_written_before_the_log_version_was_kept_there_still_loads():
    class EarlierMeta:  # pickles as a _Meta of the four fields of earlier releases did
        def __reduce__(self):
            return dd._Meta, (5, None, 9, 2)

    meta = pickle.loads(pickle.dumps(EarlierMeta()))
    assert meta.released == 5 and meta.log_version() == (2, 0, b"")  # a version no worker holds: rebuilt


def test_expiry_rewrites_the_log_in_bounded_blobs(monkeypatch):
    monkeypatch.setattr(dd, "_BLOB_MEMBERS", 2)
    config = dd.DedupConfig(ttl_days=1)
    judge = dd._Judge(config, bounded=False)
    judge.setup()
    log, meta = _Bag(), dd._Meta()
    index = judge._load(log, meta)
    items = [({"id": f"a{i}", "dedup": {}}, _exact(f"a{i}", i * 1000, f"text {i}")) for i in range(6)]
    _, meta = judge._judge(index, items, log, meta)
    meta = judge._expire(index, 1500 + config.ttl_micros, log, meta)  # a0 and a1 expire
    assert meta.generation == 1 and len(log.items) == 2  # four members, two per blob
    fresh = dd._Judge(config, bounded=False)
    fresh.setup()
    assert sorted(fresh._load(log, meta).members) == ["a2", "a3", "a4", "a5"]


@pytest.mark.parametrize("sizes", [[3, 300, 40], [dd._SIGN_BLOCK + 1, 10, 3 * dd._SIGN_BLOCK + 7]])
def test_signature_blocks_and_reused_scratch_give_the_plain_minimum(sizes):
    """Block-wise signing in a reused matrix equals min over all shingles of (a*x + b) mod 2^64."""
    hasher, rng = dd.MinHasher(), np.random.default_rng(7)
    for n in sizes:
        shingles = np.unique(rng.integers(0, 1 << 63, size=n, dtype=np.uint64))
        plain = (hasher.a[:, None] * shingles[None, :] + hasher.b[:, None]).min(axis=1)
        assert (hasher.signature_of(shingles).values == plain).all()
