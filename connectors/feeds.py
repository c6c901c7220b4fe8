"""Feed parsing: bytes fetched by :mod:`connectors.fetch` in, normalised entries out.

feedparser does the format work (RSS 0.90-2.0, RDF/RSS 1.0, Atom 0.3/1.0); it is given bytes and
the response headers, never a URL, so every network access goes through the safe fetcher. The
character encoding is settled first by :mod:`connectors.charset` and the bytes handed over as
UTF-8, so a wrong ``charset`` header cannot garble the titles. JSON Feed 1.0/1.1, which feedparser
6 does not read, is parsed here; sitemaps (plain and Google News) go to :mod:`connectors.sitemaps`.

Every entry, whatever the format, comes out as the same plain, picklable dict: ``entry_id`` (a
stable hash of the GUID, else the link, else the title), ``guid``, an absolute ``link`` (feed
``xml:base`` and the feed's own URL applied), a plain-text ``title``, ``summary``, the feed's full
text ``content`` (``content:encoded``, Atom content; kept as a fallback for pages that cannot be
fetched), ``published_at``/``updated_at`` in UTC ISO-8601, ``authors``, ``categories``,
``feed_url``, ``language`` and ``image``.
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
from html.parser import HTMLParser
import json
import re
from typing import Any, Mapping, Optional
from urllib.parse import urljoin, urlsplit

import feedparser

from connectors import charset, sitemaps

MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024  # a gzipped feed or sitemap file (no Content-Encoding)
_LINK_SCHEMES = ("http", "https", "file", "ftp")
_ROOT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_FEED_ROOTS = {"rss", "rdf", "feed", "channel"}  # channel: CDF
_SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400, "yearly": 365 * 86400}


class FeedParseError(Exception):
    """The bytes are not a feed we can read."""


def _iso(struct_time) -> Optional[str]:
    if not struct_time:
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(struct_time), tz=dt.timezone.utc).isoformat()
    except (OverflowError, ValueError, TypeError):
        return None


class _TextOnly(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def plain_text(value: Optional[str], content_type: Optional[str] = "text/html") -> Optional[str]:
    """Markup (an HTML title) reduced to one line of text; plain text only has its spaces tidied."""
    if value is None:
        return None
    if content_type and ("html" in content_type or "xml" in content_type) and ("<" in value or "&" in value):
        parser = _TextOnly()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    value = " ".join(value.split())
    return value or None


def _authors(entry: Mapping[str, Any]) -> list[str]:
    names = []
    for a in entry.get("authors") or []:
        if isinstance(a, Mapping):
            names.append(a.get("name") or a.get("email"))
    if not any(names) and entry.get("author"):
        names = [entry["author"]]
    return list(dict.fromkeys(n.strip() for n in names if n and n.strip()))


def _categories(tags) -> list[str]:
    terms = []
    for t in tags or []:
        if isinstance(t, Mapping):
            term = t.get("term") or t.get("label")
            if term and term.strip():
                terms.append(" ".join(term.split()))
    return list(dict.fromkeys(terms))


def _entry_id(link: Optional[str], guid: Optional[str], title: Optional[str], extra: str = "") -> str:
    basis = guid or link or title or extra
    return hashlib.sha1(basis.encode("utf-8")).hexdigest()


def _absolute_link(link: Optional[str], base: str) -> Optional[str]:
    """``link`` made absolute against ``base``; None for javascript:, data:, mailto: and the like."""
    if not link or not link.strip():
        return None
    absolute = urljoin(base, link.strip())
    scheme = urlsplit(absolute).scheme.lower()
    if scheme in _LINK_SCHEMES:
        return absolute
    return None if scheme else absolute  # a relative link with no usable base stays relative


def _entry_link(e: Mapping[str, Any]) -> Optional[str]:
    if e.get("link"):
        return e["link"]
    for link in e.get("links") or []:  # an Atom entry whose only link has another rel
        if isinstance(link, Mapping) and link.get("href") and link.get("rel") in (None, "alternate"):
            return link["href"]
    return None


def _full_content(e: Mapping[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """The longest full-text body (content:encoded, Atom content) and its type."""
    best, best_type = None, None
    for c in e.get("content") or []:
        value = c.get("value")
        if value and value.strip() and (best is None or len(value) > len(best)):
            best, best_type = value, c.get("type")
    return best, best_type


def _image(e: Mapping[str, Any], base: str) -> Optional[str]:
    for key in ("media_thumbnail", "media_content"):
        for m in e.get(key) or []:
            if isinstance(m, Mapping) and m.get("url") and (key == "media_thumbnail" or
                                                           str(m.get("medium") or m.get("type") or "image").startswith("image")):
                return _absolute_link(m["url"], base)
    for link in e.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            return _absolute_link(link.get("href"), base)
    return None


def _update_interval(feed: Mapping[str, Any]) -> Optional[int]:
    """Seconds between updates the feed announces: RSS ``<ttl>`` (minutes) or sy:updatePeriod/Frequency."""
    ttl = feed.get("ttl")
    if isinstance(ttl, str) and ttl.strip().isdigit():
        return int(ttl.strip()) * 60
    period = _SY_PERIODS.get(str(feed.get("sy_updateperiod") or "").strip().lower())
    if period:
        freq = str(feed.get("sy_updatefrequency") or "1").strip()
        return period // max(1, int(freq)) if freq.isdigit() else period
    return None


def _root_element(head: str) -> Optional[str]:
    """The local name of the first element, past the prolog, comments and doctype."""
    head = re.sub(r"<!--.*?-->", "", head, flags=re.S).split("<!--", 1)[0]
    m = _ROOT.search(head)
    return m.group(1).rsplit(":", 1)[-1] if m else None


def parse_feed(body: bytes, feed_url: str, headers: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Return ``{"title", "link", "format", "ttl", "bozo", "entries": [...], ...}`` or raise FeedParseError.

    Also ``encoding`` and ``encoding_source`` (how the charset was decided), ``language``,
    ``updated_at``, ``update_interval_s`` (from ``<ttl>`` or the syndication module) and, for a
    sitemap index, ``sitemaps``.
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if body[:2] == b"\x1f\x8b":  # a .xml.gz file served without Content-Encoding
        from connectors.fetch import FetchError, decompress_capped

        try:
            body = decompress_capped(body, "gzip", MAX_DECOMPRESSED_BYTES, feed_url)
        except FetchError as exc:
            raise FeedParseError(f"not a feed: {exc.reason}") from exc
    content_type = headers.get("content-type")
    utf8, encoding, source = charset.to_utf8_xml(body, content_type)
    head = utf8[:4096].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if head.startswith(("{", "[")):
        result = _parse_json_feed(utf8, feed_url)
    else:
        root = _root_element(head)
        if root and sitemaps.is_sitemap_root(root):
            try:
                result = sitemaps.parse_sitemap(utf8, feed_url)
            except Exception as exc:  # lxml's errors on hostile input are not one class
                raise FeedParseError(f"not a sitemap: {exc}") from exc
        else:
            result = _parse_xml_feed(utf8, feed_url, headers, (root or "").lower() in _FEED_ROOTS)
    result["encoding"] = encoding
    result["encoding_source"] = source
    return result


def _parse_xml_feed(utf8: bytes, feed_url: str, headers: dict[str, str], is_feed_root: bool) -> dict[str, Any]:
    fp_headers = dict(headers)
    # The bytes are UTF-8 now, whatever the server said; with no header at all (a file), say XML,
    # or feedparser flags the missing Content-Type once it sees any header.
    mime = fp_headers.get("content-type", "application/xml").split(";")[0].strip() or "application/xml"
    fp_headers["content-type"] = f"{mime}; charset=utf-8"
    fp_headers.setdefault("content-location", feed_url)  # the base for relative links
    parsed = feedparser.parse(utf8, response_headers=fp_headers, resolve_relative_uris=True, sanitize_html=True)
    feed = parsed.get("feed", {})
    if not parsed.get("version") and not parsed.entries and (parsed.get("bozo") or not is_feed_root):
        exc = parsed.get("bozo_exception")
        raise FeedParseError(f"not a feed: {exc}" if exc else "not a feed: no RSS, RDF or Atom root element")
    entries = []
    for e in parsed.entries:
        link = _absolute_link(_entry_link(e), feed_url)
        content, content_type = _full_content(e)
        guid = e.get("id") or None
        title_type = (e.get("title_detail") or {}).get("type")
        title = plain_text(e.get("title"), title_type)
        # dict.get: FeedParserDict.get("updated_parsed") falls back to published_parsed (with a warning)
        updated = dict.get(e, "updated_parsed")
        published = dict.get(e, "published_parsed") or updated or dict.get(e, "created_parsed")
        entries.append({
            "entry_id": _entry_id(link, guid, title, e.get("summary") or content or ""),
            "guid": guid,
            "link": link,
            "title": title,
            "summary": e.get("summary") or None,
            "content": content,
            "content_type": content_type,
            "published_at": _iso(published),
            "updated_at": _iso(updated),
            "authors": _authors(e),
            "categories": _categories(e.get("tags")),
            "feed_url": feed_url,
            "language": (e.get("title_detail") or {}).get("language") or feed.get("language"),
            "image": _image(e, feed_url),
        })
    ttl = feed.get("ttl")
    return {
        "title": plain_text(feed.get("title"), (feed.get("title_detail") or {}).get("type")),
        "link": _absolute_link(feed.get("link"), feed_url) or feed_url,
        "format": parsed.get("version") or "unknown",
        "ttl": int(ttl) if isinstance(ttl, str) and ttl.strip().isdigit() else None,
        "update_interval_s": _update_interval(feed),
        "language": feed.get("language"),
        "updated_at": _iso(dict.get(feed, "updated_parsed")),
        "bozo": bool(parsed.get("bozo")),
        "bozo_reason": str(parsed.get("bozo_exception") or "") or None,
        "entries": entries,
    }


# ---------------------------------------------------------------------------------------------
# JSON Feed 1.0 / 1.1 (https://www.jsonfeed.org/version/1.1/)

def _parse_json_feed(body: bytes, feed_url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FeedParseError(f"not a feed: invalid JSON ({exc})") from exc
    if not isinstance(doc, dict) or "jsonfeed.org/version" not in str(doc.get("version", "")):
        raise FeedParseError("not a feed: JSON without a jsonfeed.org version")
    base = feed_url
    feed_authors = _json_authors(doc)
    entries = []
    for item in doc.get("items") or []:
        if not isinstance(item, dict):
            continue
        link = _absolute_link(_str(item.get("url")) or _str(item.get("external_url")), base)
        guid = _str(item.get("id"))
        title = plain_text(_str(item.get("title")), "text/plain")
        content_html = _str(item.get("content_html"))
        content = _safe_html(content_html, link or base) if content_html else _str(item.get("content_text"))
        summary = _str(item.get("summary"))
        entries.append({
            "entry_id": _entry_id(link, guid, title, summary or content or ""),
            "guid": guid,
            "link": link,
            "title": title,
            "summary": summary,
            "content": content,
            "content_type": "text/html" if content_html else ("text/plain" if content else None),
            "published_at": _json_date(item.get("date_published") or item.get("date_modified")),
            "updated_at": _json_date(item.get("date_modified")),
            "authors": _json_authors(item) or feed_authors,
            "categories": list(dict.fromkeys(str(t).strip() for t in item.get("tags") or [] if str(t).strip())),
            "feed_url": feed_url,
            "language": _str(item.get("language")) or _str(doc.get("language")),
            "image": _absolute_link(_str(item.get("image")) or _str(item.get("banner_image")), base),
        })
    version = str(doc.get("version")).rsplit("/", 1)[-1]
    return {"title": plain_text(_str(doc.get("title")), "text/plain"),
            "link": _absolute_link(_str(doc.get("home_page_url")), base) or feed_url,
            "format": "json" + version.replace(".", ""), "ttl": None, "update_interval_s": None,
            "language": _str(doc.get("language")), "updated_at": None, "bozo": False, "bozo_reason": None,
            "entries": entries}


def _safe_html(fragment: str, base: str) -> str:
    """JSON Feed HTML treated as feedparser treats feed HTML: links made absolute, scripts removed."""
    from feedparser.sanitizer import _sanitize_html  # pinned feedparser 6.0.14
    from feedparser.urls import resolve_relative_uris

    return _sanitize_html(resolve_relative_uris(fragment, base, "utf-8", "text/html"), "utf-8", "text/html")


def _str(value) -> Optional[str]:
    if value is None or isinstance(value, (dict, list)):
        return None
    value = str(value)
    return value if value.strip() else None


def _json_authors(obj: dict) -> list[str]:
    """JSON Feed 1.1 ``authors`` (a list), or 1.0's single ``author`` object."""
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    names = [a.get("name") for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)]
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def _json_date(value) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()
