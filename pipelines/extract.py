"""Extract + clean: one HTML page in, the article's clean text and metadata out.

The page is parsed once, with trafilatura's own loader, and that tree serves every step.
Metadata is read first, before anything is pruned, in a few C-filtered walks: meta tags,
JSON-LD, the canonical link, <time>, rel=tag/category links, <h1> and <title>. trafilatura's own
metadata pass is not used: its page-wide date and author searches cost about a fifth of an
extraction, so htmldate and a byline search run only when the page states no date or author.
Then the boilerplate pre-pass prunes the tree, trafilatura extracts the main text from it
(comments off, precision on: measured best on news pages, see benchmarks/extract.py) with its
main extractor alone, and with its fallback cascade only when that result is short, empty or
not in paragraphs (the same output on every measured page but one, where it is better; about
1.45x faster), subheadings it lost between two kept paragraphs are put back, and the text
post-pass finishes the job. ``newsingest extract`` and the pipeline both call :func:`extract_article`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from typing import Any, Optional

import trafilatura
from htmldate import find_date
from lxml.etree import XPath

from pipelines import boilerplate

EXTRACTOR = f"trafilatura {trafilatura.__version__}"
TRAFILATURA_OPTIONS = dict(include_comments=False, favor_precision=True, include_tables=True)
# shorter fast results get trafilatura's fallback cascade (see _needs_fallback)
_FALLBACK_BELOW = 2 * trafilatura.settings.DEFAULT_CONFIG.getint("DEFAULT", "MIN_EXTRACTED_SIZE")
_TITLE_SEPARATOR = re.compile(r"\s+[|–—•·:-]\s+|\s+[-–—]\s*$")


class ExtractError(Exception):
    """The page yielded no article text."""


def _head_meta(tree) -> dict[str, list[str]]:
    """Every <meta> content by its property/name/itemprop (lower-cased), read in one pass."""
    found: dict[str, list[str]] = {}
    for el in tree.iter("meta"):
        content = (el.get("content") or "").strip()
        key = el.get("property") or el.get("name") or el.get("itemprop")
        if content and key:
            found.setdefault(key.strip().lower(), []).append(content)
    return found


def _first(meta: dict[str, list[str]], *names: str) -> Optional[str]:
    return next((meta[n][0] for n in names if n in meta), None)


def _json_ld(tree) -> list[dict]:
    found: list[dict] = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            doc = json.loads(script.text or "", strict=False)
        except (json.JSONDecodeError, TypeError):
            continue
        stack = doc if isinstance(doc, list) else [doc]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if isinstance(item.get("@graph"), list):
                    stack.extend(item["@graph"])
                found.append(item)
            elif isinstance(item, list):
                stack.extend(item)
    return found


def parse_datetime(value: Optional[str]) -> Optional[str]:
    """An ISO-8601 string in UTC, or None; naive times and bare dates are taken as UTC."""
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        match = re.match(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?\s*([+-]\d{2}:?\d{2}|Z)?", value)
        if not match:
            return None
        zone = (match.group(3) or "+00:00").replace("Z", "+00:00")
        zone = zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
        try:
            parsed = dt.datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}{zone}")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()


def _ld_list(value) -> list[str]:
    if isinstance(value, str):
        return boilerplate.split_tags(value)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _ld_names(value) -> list[str]:
    """Names of a JSON-LD author/publisher: a string, an object with "name", or a list of those."""
    values = value if isinstance(value, list) else [value]
    names = [v.get("name") if isinstance(v, dict) else v for v in values]
    return [n.strip() for n in names if isinstance(n, str) and n.strip()]


def _ld_first(items: list[dict], key: str):
    return next((item[key] for item in items if item.get(key)), None)


def _page_elements(tree) -> dict[str, list]:
    """The few elements metadata needs, collected in one C-filtered walk."""
    found: dict[str, list] = {"h1": [], "canonical": [], "time": [], "tag": [], "category": [], "title": []}
    for el in tree.iter("h1", "link", "time", "a", "title"):
        tag = el.tag
        if tag == "a":
            rel = el.get("rel")
            if rel:
                rels = rel.lower().split()
                if "tag" in rels:
                    found["tag"].append(el)
                elif "category" in rels:
                    found["category"].append(el)
        elif tag == "link":
            if el.get("rel") == "canonical" and el.get("href"):
                found["canonical"].append(el.get("href").strip())
        elif tag == "time":
            if el.get("datetime"):
                found["time"].append(el.get("datetime"))
        else:
            found[tag].append(" ".join(el.text_content().split()))
    return found


def _page_metadata(tree, url: Optional[str]) -> dict[str, Any]:
    """Metadata of the unpruned page: meta tags and JSON-LD first, page elements as fallback."""
    meta = _head_meta(tree)
    ld = [d for d in _json_ld(tree) if "Article" in str(d.get("@type", "")) or "datePublished" in d]
    page = _page_elements(tree)
    published = _first(meta, "article:published_time", "og:article:published_time", "datepublished", "pubdate",
                       "publish-date", "publish_date", "dc.date.issued", "dcterms.created", "sailthru.date",
                       "parsely-pub-date") or _ld_first(ld, "datePublished") or _ld_first(ld, "dateCreated")
    published_at = parse_datetime(published) or parse_datetime(page["time"][0] if page["time"] else None)
    if not published_at:  # nothing stated in the page: let htmldate search it
        published_at = parse_datetime(find_date(tree, url=url, extensive_search=False, original_date=True))
    tags = list(meta.get("article:tag", []))
    for raw in meta.get("news_keywords", []) + meta.get("keywords", []):
        tags += boilerplate.split_tags(raw)
    for item in ld:
        tags += _ld_list(item.get("keywords"))
    tags += [a.text_content().strip() for a in page["tag"]]
    categories = list(meta.get("article:section", [])) + [a.text_content().strip() for a in page["category"]]
    for item in ld:
        categories += _ld_list(item.get("articleSection"))
    head_title = page["title"][0] if page["title"] else ""
    og_title = _first(meta, "og:title", "twitter:title")
    headline = _ld_first(ld, "headline")
    title = og_title or (headline if isinstance(headline, str) else None) or (page["h1"][0] if page["h1"] else None) \
        or _TITLE_SEPARATOR.split(head_title)[0] or None
    authors = meta.get("author", []) + meta.get("article:author", []) + meta.get("dc.creator", []) \
        + [n for item in ld for n in _ld_names(item.get("author"))]
    authors = [a for a in authors if not a.startswith("http")]
    if not authors:  # a page-wide search, only when meta tags and JSON-LD name nobody
        authors = [name for name in [_byline(tree)] if name]
    publisher = next((n for item in ld for n in _ld_names(item.get("publisher"))), None)
    image = _first(meta, "og:image", "twitter:image", "twitter:image:src")
    if not image:
        ld_image = _ld_first(ld, "image")
        image = ld_image if isinstance(ld_image, str) else (ld_image or {}).get("url") if isinstance(ld_image, dict) else None
    return {
        "title": title,
        "titles": [t for t in [title, og_title, headline if isinstance(headline, str) else None, head_title,
                               _TITLE_SEPARATOR.split(head_title)[0], *page["h1"][:2]] if t],
        "authors": authors,
        "published_at": published_at,
        "canonical_url": (page["canonical"] or [None])[0] or _first(meta, "og:url") or url,
        "site_name": _first(meta, "og:site_name", "application-name") or publisher or _site_from_title(head_title),
        "image": image,
        "description": _first(meta, "og:description", "description", "twitter:description"),
        "categories": categories,
        "tags": tags,
        "language": (tree.get("lang") or _first(meta, "og:locale", "language", "content-language") or "")
                    .replace("_", "-").split("-")[0].lower() or None,
    }


_BYLINE_XPATH = XPath(
    '//*[@rel="author" or @itemprop="author" or contains(@class, "byline") or contains(@class, "author-name")'
    ' or contains(@class, "authorName")]')


def _byline(tree) -> Optional[str]:
    """The first short byline-like element of the page, when meta tags and JSON-LD name nobody."""
    for el in _BYLINE_XPATH(tree):
        text = " ".join(el.text_content().split())
        if 2 < len(text) < 80:
            return text
    return None


def _site_from_title(head_title: str) -> Optional[str]:
    """"Story title | Site Name" -> "Site Name"."""
    parts = re.split(r"\s+[|–—•·]\s+|\s+-\s+", head_title)
    return parts[-1].strip() if len(parts) > 1 and 1 < len(parts[-1]) <= 40 else None


def _dedupe(items) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        item = re.sub(r"\s+", " ", item or "").strip()
        if item and item.lower() not in seen:
            seen[item.lower()] = item
    return list(seen.values())


def _authors(raw: list[str]) -> list[str]:
    names = [n for item in raw for n in re.split(r";|,|\band\b|&|\|", re.sub(r"^\s*by\s+", "", item, flags=re.I))]
    return _dedupe(n.strip() for n in names if 1 < len(n.strip()) <= 80)


def _restore_subheadings(tree, text: str, removed: Counter) -> str:
    """Put back subheadings trafilatura dropped between two paragraphs it kept.

    Without an <article>-like container (utility-class or bare templates) trafilatura gathers
    the paragraphs but can lose the <h2>/<h3> between them; a heading whose neighbours are
    adjacent lines of the output belongs to the story.
    """
    lines = text.split("\n")
    index = {" ".join(line.split()): i for i, line in enumerate(lines)}
    inserts: list[tuple[int, str]] = []
    for heading in tree.iter("h2", "h3", "h4"):
        title = " ".join(heading.text_content().split())
        prev, nxt = heading.getprevious(), heading.getnext()
        if not title or len(title) > 150 or prev is None or nxt is None or title in index:
            continue
        before = index.get(" ".join(prev.text_content().split()))
        after = index.get(" ".join(nxt.text_content().split()))
        if before is not None and after == before + 1:
            inserts.append((after, title))
    for position, title in sorted(inserts, reverse=True):
        lines.insert(position, title)
        removed["restored:subheading"] += 1
    return "\n".join(lines)


def _needs_fallback(doc) -> bool:
    """Whether the fast result is one that trafilatura's fallback extractors are there to rescue.

    justext steps in under MIN_EXTRACTED_SIZE; readability when the text is empty, has no
    paragraph text or is table-dominated, and also when its own text is twice as long: that last
    trigger is given up for long paragraph texts (on the 210 measured pages it changed one
    result, for the worse), which saves the readability run, about a third of an extraction.
    """
    if doc is None or len(doc.text or "") < _FALLBACK_BELOW:
        return True
    body = doc.body
    paragraphs = body.findall(".//p")
    return not paragraphs or len(body.findall(".//table")) > len(paragraphs)


def _main_text(tree, url: Optional[str]):
    """trafilatura's main extractor alone, then its whole cascade when the result is doubtful.

    The cascade runs on the same tree: the first run's only changes to it are the prunes the
    cascade makes first anyway (trafilatura cleans copies).
    """
    doc = trafilatura.bare_extraction(tree, url=url, fast=True, **TRAFILATURA_OPTIONS)
    if _needs_fallback(doc):
        doc = trafilatura.bare_extraction(tree, url=url, **TRAFILATURA_OPTIONS)
    return doc


def extract_article(page: bytes | str, url: Optional[str] = None) -> dict[str, Any]:
    """Return title, clean text, lead and metadata of one page; raise ExtractError when empty."""
    tree = boilerplate.parse_html(page)
    if tree is None:
        raise ExtractError("empty or unparseable HTML")
    meta = _page_metadata(tree, url)
    removed: Counter = Counter()
    dom_tags = boilerplate.prune_dom(tree, removed)
    doc = _main_text(tree, url)
    if doc is None or not (doc.text or "").strip():
        raise ExtractError("trafilatura found no main text")
    text = _restore_subheadings(tree, doc.text, removed)
    text, text_tags = boilerplate.clean_text(text, meta["titles"], removed, meta["description"])
    if not text.strip():
        raise ExtractError("nothing left after boilerplate removal")
    return {
        "title": meta["title"],
        "text": text,
        "lead": text.split("\n", 1)[0],
        "description": meta["description"],
        "authors": _authors(meta["authors"]),
        "published_at": meta["published_at"],
        "language": meta["language"],
        "site_name": meta["site_name"],
        "canonical_url": meta["canonical_url"],
        "image": meta["image"],
        "source_tags": _dedupe(meta["tags"] + dom_tags + text_tags),
        "categories": _dedupe(meta["categories"]),
        "extractor": EXTRACTOR,
        "rules_version": boilerplate.RULES_VERSION,
        "removed": dict(sorted(removed.items())),
    }
