"""extract_article end to end: the seed pages and the held-out style pages come out clean.

Seed pages (tests/data/seed, five caption markups of one WordPress template) and the style pages
(tests/data/extraction/styles: other templates, other wordings, built by build_styles.py) carry
gold story text and the junk lines each page holds. On every page: no junk line survives, the
story keeps >= 0.99 of its 4-word shingles (the DESIGN.md measure), the subheading stays, and the
page's tags land in source_tags.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from pipelines.extract import ExtractError, extract_article, parse_datetime

DATA = Path(__file__).resolve().parent / "data"
_TOKEN = re.compile(r"\w+")

RECORD_KEYS = {"title", "text", "lead", "description", "authors", "published_at", "language", "site_name",
               "canonical_url", "image", "source_tags", "categories", "extractor", "rules_version", "removed"}


def _shingles(text: str) -> Counter:
    tokens = _TOKEN.findall(text)
    return Counter(tuple(tokens[i:i + 4]) for i in range(len(tokens) - 3))


def _recall(output: str, gold: str) -> float:
    ref = _shingles(gold)
    return sum((_shingles(output) & ref).values()) / sum(ref.values())


def _pages(folder: str, html_dir: Path):
    truth = json.loads((DATA / "extraction" / folder / "ground-truth.json").read_text(encoding="utf-8"))
    return [pytest.param(html_dir / f"{page_id}.html", item, id=page_id) for page_id, item in sorted(truth.items())]


SEED = _pages("seed", DATA / "seed")
STYLES = _pages("styles", DATA / "extraction" / "styles" / "html")


def _junk_left(text: str, item: dict) -> list[str]:
    story = {" ".join(line.split()) for line in item["articleBody"].split("\n")}
    rest = "\n".join(line for line in text.split("\n") if " ".join(line.split()) not in story)
    return [junk for junk in item["junk"] if junk in rest]


@pytest.mark.parametrize("path,item", SEED + STYLES)
def test_no_junk_survives_and_the_story_stays(path, item):
    record = extract_article(path.read_bytes(), item["url"])
    assert _junk_left(record["text"], item) == []
    assert _recall(record["text"], item["articleBody"]) >= 0.99
    assert [t for t in item["tags"] if t not in record["source_tags"]] == []


@pytest.mark.parametrize("path,item", SEED)
def test_seed_pages_keep_every_paragraph_and_the_subheading(path, item):
    lines = extract_article(path.read_bytes())["text"].split("\n")
    assert lines == item["articleBody"].split("\n")


def test_seed_record_metadata():
    record = extract_article((DATA / "seed" / "wp__figcaption.html").read_bytes(), "https://daily-ledger.test/a")
    assert set(record) >= RECORD_KEYS
    assert record["title"].startswith("Volodymyr Zelensky Admits Ukraine May Never Join NATO")
    assert record["published_at"] == "2022-03-16T10:12:00+00:00"
    assert record["authors"] == ["Staff Writer"]
    assert record["language"] == "en"
    assert record["site_name"] == "The Daily Ledger"
    assert record["source_tags"] == ["Ukraine", "NATO", "Russia", "Vladimir putin"]
    assert record["lead"].startswith("In a significant concession")
    assert record["extractor"].startswith("trafilatura ")
    assert record["rules_version"]
    assert record["removed"]["dom:figcaption"] == 1 and all(n > 0 for n in record["removed"].values())


def test_record_counts_what_each_rule_removed():
    path = DATA / "extraction" / "styles" / "html" / "bare-0.html"
    removed = extract_article(path.read_bytes())["removed"]
    assert {"text:caption", "text:repeated_headline", "text:tags", "text:call_to_action"} <= set(removed)


def test_metadata_from_json_ld_and_meta_tags():
    page = """<html lang="de-DE"><head><title>Ein Titel - Beispiel</title>
    <link rel="canonical" href="https://example.test/artikel">
    <meta property="og:image" content="https://example.test/a.jpg">
    <meta property="article:section" content="Politik">
    <script type="application/ld+json">{"@context": "https://schema.org", "@graph": [{"@type": "NewsArticle",
     "headline": "Ein Titel", "datePublished": "2024-02-01T09:30:00+01:00", "keywords": "Wahl, Bundestag",
     "author": [{"@type": "Person", "name": "Anna Berg"}, {"@type": "Person", "name": "Jan Ott"}],
     "publisher": {"@type": "Organization", "name": "Beispiel Zeitung"}}]}</script></head>
    <body><article><h1>Ein Titel</h1>""" + "<p>Ein langer Absatz über die Wahl und den Bundestag. </p>" * 6 + \
        "</article></body></html>"
    record = extract_article(page)
    assert record["title"] == "Ein Titel"
    assert record["published_at"] == "2024-02-01T08:30:00+00:00"
    assert record["authors"] == ["Anna Berg", "Jan Ott"]
    assert record["canonical_url"] == "https://example.test/artikel"
    assert record["image"] == "https://example.test/a.jpg"
    assert record["site_name"] == "Beispiel Zeitung"
    assert record["language"] == "de"
    assert record["source_tags"] == ["Wahl", "Bundestag"]
    assert record["categories"] == ["Politik"]


@pytest.mark.parametrize("value,expected", [
    ("2022-03-16T10:12:00+00:00", "2022-03-16T10:12:00+00:00"),
    ("2019-11-18T23:04:24-05:00", "2019-11-19T04:04:24+00:00"),
    ("2019-11-18T23:04-0500", "2019-11-19T04:04:00+00:00"),
    ("2020-01-02", "2020-01-02T00:00:00+00:00"),
    ("not a date", None),
    (None, None),
])
def test_parse_datetime_is_timezone_aware(value, expected):
    assert parse_datetime(value) == expected


@pytest.mark.parametrize("page", [b"", b"   ", "<html><body></body></html>"])
def test_empty_pages_raise(page):
    with pytest.raises(ExtractError):
        extract_article(page)


@pytest.mark.parametrize("path,expected_runs", [(DATA / "seed" / "wp__figcaption.html", [True]),
                                                (DATA / "extraction" / "styles" / "html" / "table-0.html", [True, False])])
def test_full_trafilatura_cascade_runs_only_for_doubtful_results(monkeypatch, path, expected_runs):
    """A story in paragraphs takes the main extractor alone (fast=True); a table-laid page, empty to
    it, gets the whole cascade (readability, justext)."""
    import trafilatura
    runs, real = [], trafilatura.bare_extraction

    def counted(*args, **kwargs):
        runs.append(kwargs.get("fast", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(trafilatura, "bare_extraction", counted)
    record = extract_article(path.read_bytes())
    assert runs == expected_runs
    assert len(record["text"]) > 500
