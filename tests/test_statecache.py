"""Beam's state cache weighs values the same without objsize's per-call scan of every module."""
from __future__ import annotations

import objsize
from apache_beam.runners.worker.statecache import get_deep_size

from pipelines import dedup as dd
from pipelines.statecache import cheap_state_weighing


def test_weights_are_unchanged_by_the_cheap_setting():
    record = {"id": "a" * 32, "text": "word " * 400, "topics": [{"topic": "nato", "evidence": ["x"]}]}
    member = dd.Member("a" * 32, 10, bytes(128), 300, bytes(512), "f" * 64, (10, "a" * 32))
    values = [[(record, member)], [b"blob" * 100, b"other"], (1, None, 7, 0)]
    before = [get_deep_size(v) for v in values]
    saved = objsize.default_settings.exclude_modules_globals
    try:
        cheap_state_weighing()
        assert objsize.default_settings.exclude_modules_globals is False
        assert [get_deep_size(v) for v in values] == before
    finally:
        objsize.default_settings.update(exclude_modules_globals=saved)
