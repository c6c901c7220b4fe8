"""The Deduplicate transform on the DirectRunner: batch (against the offline path) and streaming
(TestStream): arrival order against event time, late arrivals, TTL expiry, copies in one bundle."""
from __future__ import annotations

import json
import random
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipelines import dedup as dd

DEV = Path(__file__).parent / "data" / "dedup" / "aeb-dev-neardup.jsonl"
DAY = 86400


@pytest.fixture(scope="module")
def dev():
    return [json.loads(line) for line in DEV.open(encoding="utf-8")]


@pytest.fixture(scope="module")
def story(dev):
    """An original, its trimmed copy and its wire reprint, and an unrelated article."""
    by_cluster = {}
    for r in dev:
        by_cluster.setdefault(r["cluster_id"], {})[r["variant_type"] or "original"] = r
    cluster = next(c for c in by_cluster.values() if {"original", "trimmed", "wire_reprint"} <= set(c))
    other = next(c["original"] for c in by_cluster.values() if len(c) == 1)
    pick = lambda r, name: {"id": name, "text": r["text"], "fetched_at": "2024-01-01T00:00:00+00:00"}
    return {"original": pick(cluster["original"], "original"), "trimmed": pick(cluster["trimmed"], "trimmed"),
            "reprint": pick(cluster["wire_reprint"], "reprint"), "other": pick(other, "other")}


def _verdicts(records, label):
    return records | label >> beam.Map(lambda r: (r["id"], r["dedup"]["cluster_id"], r["dedup"]["duplicate_of"]))


def check_stream(stream: TestStream, originals, duplicates, config: dd.DedupConfig = dd.DedupConfig()):
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with TestPipeline(options=options) as p:
        orig, dup = p | stream | dd.Deduplicate(config)
        assert_that(_verdicts(orig, "VerdictsOriginals"), equal_to(originals), label="originals")
        assert_that(_verdicts(dup, "VerdictsDuplicates"), equal_to(duplicates), label="duplicates")


def at(record, seconds):
    return TimestampedValue(record, seconds)


def test_copy_first_in_processing_time_original_earlier_in_event_time(story):
    stream = (TestStream()
              .add_elements([at(story["trimmed"], 2000)])
              .add_elements([at(story["other"], 1500)])
              .add_elements([at(story["original"], 1000)])  # arrives last, published first
              .advance_watermark_to(3000)
              .advance_watermark_to(3000 + 8 * DAY)  # past every TTL timer before infinity
              .advance_watermark_to_infinity())
    check_stream(stream,
                 originals=[("original", "original", None), ("other", "other", None)],
                 duplicates=[("trimmed", "original", "original")])


def test_late_original_does_not_replace_an_emitted_copy(story):
    """Once the watermark passed the copy, it was emitted as the founder; the late original joins it."""
    stream = (TestStream()
              .add_elements([at(story["trimmed"], 2000)])
              .advance_watermark_to(2500)
              .add_elements([at(story["original"], 1000)])  # behind the watermark
              .advance_watermark_to(3000)
              .advance_watermark_to(3000 + 8 * DAY)
              .advance_watermark_to_infinity())
    check_stream(stream,
                 originals=[("trimmed", "trimmed", None)],
                 duplicates=[("original", "trimmed", "trimmed")])


def test_copy_after_ttl_founds_a_new_cluster(story):
    config = dd.DedupConfig(ttl_days=1)
    stream = (TestStream()
              .add_elements([at(story["original"], 1000)])
              .add_elements([at(story["trimmed"], 1000 + DAY // 2)])  # within the TTL: a duplicate
              .advance_watermark_to(1000 + 2 * DAY)  # the original and the first copy expire
              .add_elements([at(story["reprint"], 1000 + 3 * DAY)])  # after the TTL: a new cluster
              .advance_watermark_to(1000 + 6 * DAY)
              .advance_watermark_to_infinity())
    check_stream(stream,
                 originals=[("original", "original", None), ("reprint", "reprint", None)],
                 duplicates=[("trimmed", "original", "original")],
                 config=config)


def test_two_copies_in_one_bundle(story):
    stream = (TestStream()
              .add_elements([at(story["original"], 1000)])
              .advance_watermark_to(1500)
              .add_elements([at(story["reprint"], 2000), at(story["trimmed"], 2001), at(story["other"], 2002)])
              .advance_watermark_to(3000)
              .advance_watermark_to(3000 + 8 * DAY)
              .advance_watermark_to_infinity())
    check_stream(stream,
                 originals=[("original", "original", None), ("other", "other", None)],
                 duplicates=[("reprint", "original", "original"), ("trimmed", "original", "original")])


def test_original_and_copies_in_one_bundle_earliest_event_time_founds(story):
    stream = (TestStream()
              .add_elements([at(story["trimmed"], 2001), at(story["reprint"], 2000), at(story["original"], 1000)])
              .advance_watermark_to(3000)
              .advance_watermark_to(3000 + 8 * DAY)
              .advance_watermark_to_infinity())
    check_stream(stream,
                 originals=[("original", "original", None)],
                 duplicates=[("reprint", "original", "original"), ("trimmed", "original", "original")])


def test_same_article_twice_is_a_duplicate_of_itself(story):
    again = dict(story["original"])
    stream = (TestStream()
              .add_elements([at(story["original"], 1000)])
              .advance_watermark_to(2000)
              .add_elements([at(again, 3000)])  # the same id (canonical URL) after the verdict
              .advance_watermark_to(4000)
              .advance_watermark_to(4000 + 8 * DAY)
              .advance_watermark_to_infinity())
    check_stream(stream, originals=[("original", "original", None)],
                 duplicates=[("original", "original", "original")])


def test_batch_matches_the_offline_path(dev):
    """A shuffled slice of the dev set in batch, ordered by fetched_at, gives the offline verdicts."""
    clusters = sorted({r["cluster_id"] for r in dev})[:14]
    sample = [r for r in dev if r["cluster_id"] in clusters]
    random.Random(7).shuffle(sample)
    records = [{"id": r["id"][:32], "text": r["text"], "fetched_at": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"}
               for i, r in enumerate(sample)]
    offline = [(r["id"], r["cluster_id"], r["duplicate_of"]) for r in dd.cluster_offline(records)]
    assert any(d for _, _, d in offline), "the slice must contain copies"
    with TestPipeline() as p:
        orig, dup = p | beam.Create(records) | dd.Deduplicate()
        assert_that(_verdicts(orig, "VerdictsOriginals"), equal_to([v for v in offline if not v[2]]), label="originals")
        assert_that(_verdicts(dup, "VerdictsDuplicates"), equal_to([v for v in offline if v[2]]), label="duplicates")
