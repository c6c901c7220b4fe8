"""Sitemaps as optional feed sources: plain ``<urlset>``, Google News sitemaps, sitemap indexes.

Many publishers list their latest stories in a Google News sitemap (``news:title``,
``news:publication_date``) and nowhere else; a plain sitemap gives at least the URL and
``lastmod``. Entries come out in the same shape as feed entries. A ``<sitemapindex>`` has no
entries, only the child sitemaps' URLs (``sitemaps``) for the caller to poll as feeds of their own.
The XML parser resolves no entities and reaches no network.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit

from lxml import etree

_PARSER_ARGS = dict(resolve_entities=False, no_network=True, recover=True, huge_tree=False,
                    remove_comments=True, remove_pis=True)


def is_sitemap_root(name: str) -> bool:
    return name in ("urlset", "sitemapindex")


def _local(el) -> str:
    tag = el.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(el, name: str):
    for c in el:
        if _local(c) == name:
            return c
    return None


def _text(el, *path: str) -> Optional[str]:
    for name in path:
        if el is None:
            return None
        el = _child(el, name)
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def w3c_datetime(value: Optional[str]) -> Optional[str]:
    """A W3C datetime (``2024-05-01``, ``2024-05-01T10:00Z``, ``...+02:00``) as UTC ISO-8601."""
    if not value:
        return None
    value = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()


def _absolute(loc: Optional[str], base: str) -> Optional[str]:
    if not loc:
        return None
    link = urljoin(base, loc)
    return link if urlsplit(link).scheme in ("http", "https", "file") else None


def parse_sitemap(xml: bytes, feed_url: str) -> dict[str, Any]:
    """``{"title", "link", "format", "ttl", "bozo", "entries", "sitemaps"}`` from sitemap XML bytes."""
    parser = etree.XMLParser(**_PARSER_ARGS)
    root = etree.fromstring(xml, parser)
    if root is None:
        raise ValueError("empty sitemap")
    kind = _local(root)
    bozo = bool(parser.error_log)
    if kind == "sitemapindex":
        children = [_absolute(_text(s, "loc"), feed_url) for s in root if _local(s) == "sitemap"]
        return {"title": None, "link": feed_url, "format": "sitemapindex", "ttl": None, "bozo": bozo,
                "entries": [], "sitemaps": [c for c in children if c]}
    entries = []
    has_news = False
    for url in root:
        if _local(url) != "url":
            continue
        link = _absolute(_text(url, "loc"), feed_url)
        if not link:
            continue
        news = _child(url, "news")
        has_news = has_news or news is not None
        keywords = _text(news, "keywords") if news is not None else None
        lastmod = w3c_datetime(_text(url, "lastmod"))
        published = w3c_datetime(_text(news, "publication_date")) if news is not None else None
        entries.append({
            "entry_id": hashlib.sha1(link.encode("utf-8")).hexdigest(),
            "guid": None,
            "link": link,
            "title": _text(news, "title") if news is not None else None,
            "summary": None,
            "content": None,
            "published_at": published or lastmod,
            "updated_at": lastmod,
            "authors": [],
            "categories": [k.strip() for k in (keywords or "").split(",") if k.strip()],
            "feed_url": feed_url,
            "language": _text(news, "publication", "language") if news is not None else None,
            "publication": _text(news, "publication", "name") if news is not None else None,
            "image": _absolute(_text(_child(url, "image"), "loc"), feed_url) if _child(url, "image") is not None else None,
        })
    return {"title": None, "link": feed_url, "format": "sitemap-news" if has_news else "sitemap", "ttl": None,
            "bozo": bozo, "entries": entries, "sitemaps": []}
