"""Feed parsing: bytes fetched by :mod:`connectors.fetch` in, normalised entries out.

feedparser does the format work (RSS 0.9x-2.0, RDF, Atom); it is given bytes and the response
headers, never a URL, so every network access goes through the safe fetcher. JSON Feed, which
feedparser 6 does not read, is parsed here. An entry is reduced to plain, picklable fields with
absolute links and UTC ISO-8601 dates.
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from typing import Any, Mapping, Optional
from urllib.parse import urljoin

import feedparser


class FeedParseError(Exception):
    """The bytes are not a feed we can read."""


def _iso(struct_time) -> Optional[str]:
    if not struct_time:
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(struct_time), tz=dt.timezone.utc).isoformat()
    except (OverflowError, ValueError, TypeError):
        return None


def _authors(entry: Mapping[str, Any]) -> list[str]:
    names = [a.get("name") for a in entry.get("authors") or [] if isinstance(a, Mapping) and a.get("name")]
    if not names and entry.get("author"):
        names = [entry["author"]]
    return list(dict.fromkeys(n.strip() for n in names if n and n.strip()))


def _entry_id(link: Optional[str], guid: Optional[str], title: Optional[str]) -> str:
    basis = guid or link or title or ""
    return hashlib.sha1(basis.encode("utf-8")).hexdigest()


def parse_feed(body: bytes, feed_url: str, headers: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Return ``{"title", "link", "format", "ttl", "entries": [...]}`` or raise FeedParseError."""
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return _parse_json_feed(stripped, feed_url)
    parsed = feedparser.parse(body, response_headers=dict(headers or {}), resolve_relative_uris=True,
                              sanitize_html=True)
    if not parsed.get("version") and not parsed.entries:
        exc = parsed.get("bozo_exception")
        raise FeedParseError(f"not a feed: {exc}" if exc else "not a feed: no RSS, RDF or Atom root element")
    feed = parsed.get("feed", {})
    base = feed.get("link") or feed_url
    entries = []
    for e in parsed.entries:
        link = e.get("link")
        link = urljoin(feed_url, link) if link else None
        content = None
        for c in e.get("content") or []:
            if c.get("value"):
                content = c["value"]
                break
        guid = e.get("id")
        entries.append(
            {
                "entry_id": _entry_id(link, guid, e.get("title")),
                "guid": guid,
                "link": link,
                "title": e.get("title"),
                "summary": e.get("summary"),
                "content": content,
                "published_at": _iso(e.get("published_parsed") or e.get("updated_parsed")),
                "updated_at": _iso(e.get("updated_parsed")),
                "authors": _authors(e),
                "categories": [t.get("term") for t in e.get("tags") or [] if t.get("term")],
                "feed_url": feed_url,
            }
        )
    ttl = feed.get("ttl")
    return {
        "title": feed.get("title"),
        "link": base,
        "format": parsed.get("version") or "unknown",
        "ttl": int(ttl) if isinstance(ttl, str) and ttl.strip().isdigit() else None,
        "bozo": bool(parsed.get("bozo")),
        "entries": entries,
    }


def _parse_json_feed(body: bytes, feed_url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedParseError(f"not a feed: invalid JSON ({exc})") from exc
    if not isinstance(doc, dict) or "jsonfeed.org/version" not in str(doc.get("version", "")):
        raise FeedParseError("not a feed: JSON without a jsonfeed.org version")
    entries = []
    for item in doc.get("items") or []:
        if not isinstance(item, dict):
            continue
        link = item.get("url") or item.get("external_url")
        link = urljoin(feed_url, link) if link else None
        authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
        published = item.get("date_published") or item.get("date_modified")
        entries.append(
            {
                "entry_id": _entry_id(link, str(item.get("id")) if item.get("id") is not None else None, item.get("title")),
                "guid": str(item.get("id")) if item.get("id") is not None else None,
                "link": link,
                "title": item.get("title"),
                "summary": item.get("summary"),
                "content": item.get("content_html") or item.get("content_text"),
                "published_at": _json_date(published),
                "updated_at": _json_date(item.get("date_modified")),
                "authors": [a.get("name") for a in authors if isinstance(a, dict) and a.get("name")],
                "categories": [str(t) for t in item.get("tags") or []],
                "feed_url": feed_url,
            }
        )
    return {"title": doc.get("title"), "link": doc.get("home_page_url") or feed_url,
            "format": "json" + str(doc.get("version")).rsplit("/", 1)[-1].replace(".", ""),
            "ttl": None, "bozo": False, "entries": entries}


def _json_date(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()
