"""Extract + clean: one HTML page in, the article's clean text and metadata out.

The page is parsed once with lxml. Metadata that trafilatura reduces or drops (a timezone-aware
publication time, the canonical link, the site's tags) is read from that tree first; then the
boilerplate pre-pass prunes it and trafilatura extracts the main text from the pruned tree
(comments off, precision on: measured best on news pages); the text post-pass finishes the job.
``newsingest extract`` and the pipeline both call :func:`extract_article`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from typing import Any, Optional

import trafilatura

from pipelines import boilerplate

EXTRACTOR = f"trafilatura {trafilatura.__version__}"
TRAFILATURA_OPTIONS = dict(include_comments=False, favor_precision=True, include_tables=True, with_metadata=True)


class ExtractError(Exception):
    """The page yielded no article text."""


def _meta(tree, *names: str) -> Optional[str]:
    for name in names:
        for attr in ("property", "name", "itemprop"):
            for el in tree.xpath(f'//meta[@{attr}="{name}"]'):
                content = (el.get("content") or "").strip()
                if content:
                    return content
    return None


def _meta_all(tree, *names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        for attr in ("property", "name"):
            out += [(el.get("content") or "").strip() for el in tree.xpath(f'//meta[@{attr}="{name}"]')]
    return [v for v in out if v]


def _json_ld(tree) -> list[dict]:
    found: list[dict] = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            doc = json.loads(script.text or "")
        except (json.JSONDecodeError, TypeError):
            continue
        stack = doc if isinstance(doc, list) else [doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if "@graph" in item and isinstance(item["@graph"], list):
                    stack.extend(item["@graph"])
                found.append(item)
            elif isinstance(item, list):
                stack.extend(item)
    return found


def parse_datetime(value: Optional[str]) -> Optional[str]:
    """An ISO-8601 string in UTC, or None; naive times are taken as UTC."""
    if not value:
        return None
    value = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()


def _page_metadata(tree) -> dict[str, Any]:
    ld = [d for d in _json_ld(tree) if "Article" in str(d.get("@type", "")) or "datePublished" in d]
    published = _meta(tree, "article:published_time", "og:article:published_time", "datePublished",
                      "pubdate", "publish-date", "dc.date.issued", "DC.date.issued")
    if not published and ld:
        published = ld[0].get("datePublished")
    if not published:
        times = tree.xpath("//time[@datetime]")
        if times:
            published = times[0].get("datetime")
    canonical = None
    for link in tree.xpath('//link[@rel="canonical"][@href]'):
        canonical = link.get("href").strip()
        break
    tags = _meta_all(tree, "article:tag", "news_keywords")
    keywords = _meta(tree, "keywords")
    if not tags and keywords:
        tags = boilerplate.split_tags(keywords)
    tags += [a.text_content().strip() for a in tree.xpath('//a[contains(concat(" ", @rel, " "), " tag ")]')]
    return {
        "published_at": parse_datetime(published),
        "canonical_url": canonical or _meta(tree, "og:url"),
        "site_name": _meta(tree, "og:site_name", "application-name"),
        "image": _meta(tree, "og:image", "twitter:image"),
        "description": _meta(tree, "og:description", "description", "twitter:description"),
        "section": _meta(tree, "article:section"),
        "tags": tags,
        "language": (tree.get("lang") or "").split("-")[0].lower() or None,
    }


def _dedupe(items) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        item = re.sub(r"\s+", " ", item or "").strip()
        if item and item.lower() not in seen:
            seen[item.lower()] = item
    return list(seen.values())


def extract_article(page: bytes | str, url: Optional[str] = None) -> dict[str, Any]:
    """Return title, clean text, lead and metadata of one page; raise ExtractError when empty."""
    tree = boilerplate.parse_html(page)
    if tree is None:
        raise ExtractError("empty or unparseable HTML")
    meta = _page_metadata(tree)
    removed: Counter = Counter()
    boilerplate.prune_dom(tree, removed)
    doc = trafilatura.bare_extraction(tree, url=url, **TRAFILATURA_OPTIONS)
    if doc is None or not (doc.text or "").strip():
        raise ExtractError("trafilatura found no main text")
    title = (doc.title or "").strip() or None
    text, text_tags = boilerplate.clean_text(doc.text, title, removed)
    if not text.strip():
        raise ExtractError("nothing left after boilerplate removal")
    lead = text.split("\n", 1)[0]
    authors = [a.strip() for a in re.split(r";|\band\b", doc.author or "") if a.strip()]
    categories = [c for c in (doc.categories or []) if c]
    return {
        "title": title,
        "text": text,
        "lead": lead,
        "description": meta["description"] or doc.description,
        "authors": _dedupe(authors),
        "published_at": meta["published_at"] or parse_datetime(doc.date),
        "language": meta["language"] or doc.language,
        "site_name": meta["site_name"] or doc.sitename,
        "canonical_url": meta["canonical_url"] or doc.url,
        "image": meta["image"] or doc.image,
        "source_tags": _dedupe(meta["tags"] + [t for raw in doc.tags or [] for t in boilerplate.split_tags(raw)]
                               + text_tags),
        "categories": _dedupe(categories + ([meta["section"]] if meta["section"] else [])),
        "extractor": EXTRACTOR,
        "rules_version": boilerplate.RULES_VERSION,
        "removed": dict(sorted(removed.items())),
    }
