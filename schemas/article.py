"""The enriched article record and the dead-letter record.

The dataclasses are the Python view; ``article.schema.json``, ``deadletter.schema.json``,
``article.avsc`` and ``deadletter.avsc`` are the wire contracts (``schemas/README.md`` documents
them, ``schemas/wire.py`` writes them). All carry ``SCHEMA_VERSION``; ``tests/test_schemas.py``
keeps them in step. Stages pass records as plain dicts (``Article(...).to_dict()``) because dicts
are cheap to pickle between Beam stages.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

SCHEMA_VERSION = "1.0.0"


@dataclass
class Source:
    feed_url: str
    publisher: Optional[str] = None
    domain: Optional[str] = None


@dataclass
class Evidence:
    term: str
    offset: int
    sentence: int
    field: str  # "title", "lead" or "text"


@dataclass
class Topic:
    id: str
    label: str
    score: float
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class Dedup:
    content_hash: str
    signature_digest: str
    cluster_id: str
    duplicate_of: Optional[str] = None
    similarity: Optional[float] = None


@dataclass
class Extraction:
    extractor: str
    rules_version: str
    removed: dict[str, int] = field(default_factory=dict)
    fallback: Optional[str] = None  # e.g. "feed_content" when the page could not be fetched


@dataclass
class Article:
    id: str
    url: str
    canonical_url: str
    source: Source
    title: Optional[str]
    text: str
    lead: Optional[str]
    authors: list[str]
    published_at: Optional[str]
    fetched_at: str
    language: Optional[str]
    source_tags: list[str]
    topics: list[Topic]
    dedup: Dedup
    extraction: Extraction
    site_name: Optional[str] = None
    image: Optional[str] = None
    taxonomy_version: Optional[str] = None
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DeadLetter:
    """A failure that must not vanish: which stage, why, and enough to find or replay the input."""

    stage: str  # "poll", "fetch", "parse", "extract", "dedup", "tag", "send"
    reason: str
    input_ref: str  # the feed or article URL, or the record id
    failed_at: str
    attempt: int = 1
    feed_url: Optional[str] = None
    detail: Optional[str] = None
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _load(name: str) -> dict:
    return json.loads(resources.files("schemas").joinpath(name).read_text(encoding="utf-8"))


@functools.cache
def article_json_schema() -> dict:
    return _load("article.schema.json")


@functools.cache
def dead_letter_json_schema() -> dict:
    return _load("deadletter.schema.json")


@functools.cache
def _validator(name: str):
    import jsonschema

    schema = _load(name)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_article(record: dict) -> None:
    """Raise jsonschema.ValidationError when ``record`` breaks the article contract."""
    _validator("article.schema.json").validate(record)


def validate_dead_letter(record: dict) -> None:
    _validator("deadletter.schema.json").validate(record)
