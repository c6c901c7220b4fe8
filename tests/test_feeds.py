"""Feed parsing: the feedparser corpus, real-world snapshots, charsets, normalisation, JSON Feed, sitemaps."""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from urllib.parse import urljoin

import feedparser
import lxml.html
import pytest

from connectors import charset
from connectors.feeds import FeedParseError, parse_feed

DATA = Path(__file__).resolve().parent / "data" / "feeds"
CORPUS = DATA / "feedparser-corpus"
REALWORLD = DATA / "realworld"
FEED_URL = "http://example.test/feeds/feed.xml"


def corpus_rows() -> list[dict]:
    with open(CORPUS / "INDEX.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def corpus_headers(row: dict) -> dict:
    return {k.lower(): v for k, v in json.loads(row["http_headers"] or "{}").items()}


def title_text(entry) -> str | None:
    """feedparser's title as plain text, by lxml (an implementation independent of the connector's)."""
    title = entry.get("title")
    if title is None:
        return None
    if "html" in (entry.get("title_detail") or {}).get("type", "") and title.strip():
        title = lxml.html.fragment_fromstring(title, create_parent="div").text_content()
    return " ".join(title.split()) or None


def test_corpus_is_complete():
    rows = corpus_rows()
    assert len(rows) == 2107
    assert all((CORPUS / r["path"]).is_file() for r in rows)


def test_every_corpus_file_parses_without_an_exception():
    """Every file goes through parse_feed; the only refusal allowed is FeedParseError for a document
    that feedparser itself finds to be no feed at all (no version, no entries)."""
    refused = []
    for row in corpus_rows():
        body = (CORPUS / row["path"]).read_bytes()
        try:
            parsed = parse_feed(body, FEED_URL, corpus_headers(row))
        except FeedParseError:
            reference = feedparser.parse(body, response_headers=corpus_headers(row))
            assert not reference.get("version") and not reference.entries, row["path"]
            refused.append(row["path"])
            continue
        assert isinstance(parsed["entries"], list)
        for entry in parsed["entries"]:
            assert len(entry["entry_id"]) == 40 and entry["feed_url"] == FEED_URL
            json.dumps(entry)  # plain, serialisable values only
    assert len(refused) <= 2, refused


def test_well_formed_corpus_entries_agree_with_feedparser():
    """For every file feedparser reads without a bozo flag: same entry count, links and titles."""
    compared = entries = 0
    for row in corpus_rows():
        body = (CORPUS / row["path"]).read_bytes()
        reference = feedparser.parse(body, response_headers=corpus_headers(row))
        if reference.bozo or row["path"].startswith("json/"):
            continue
        parsed = parse_feed(body, FEED_URL, corpus_headers(row))
        assert len(parsed["entries"]) == len(reference.entries), row["path"]
        for ours, theirs in zip(parsed["entries"], reference.entries):
            link = theirs.get("link")
            assert ours["link"] == (urljoin(FEED_URL, link) if link else None), row["path"]
            assert ours["title"] == title_text(theirs), row["path"]
        compared += 1
        entries += len(parsed["entries"])
    assert compared >= 1700 and entries >= 1100


def test_realworld_snapshots_give_manifest_counts():
    manifest = json.loads((REALWORLD / "MANIFEST.json").read_text(encoding="utf-8"))
    assert len(manifest) == 10
    for item in manifest:
        parsed = parse_feed((REALWORLD / item["file"]).read_bytes(), "https://example.test/" + item["file"])
        assert len(parsed["entries"]) == item["feedparser"]["entries"], item["file"]
        assert parsed["title"] == " ".join(item["feedparser"]["feed_title"].split()), item["file"]
        for entry in parsed["entries"]:
            assert entry["link"] is None or entry["link"].startswith("http"), item["file"]
            assert "\ufffd" not in (entry["title"] or ""), item["file"]  # no mojibake replacement chars


@pytest.mark.parametrize("name,needle", [
    ("ibash_windows-1251.rss", "Цитата"),
    ("golem_de_iso-8859-1.rss", "ü"),
    ("uol_noticias_latin1_nodecl.rss", "ã"),
    ("lecerclepsy_no_encoding_iso-8859-1.rss", "é"),
])
def test_realworld_legacy_charsets_decoded(name, needle):
    parsed = parse_feed((REALWORLD / name).read_bytes(), "https://example.test/feed")
    text = " ".join((e["title"] or "") + " " + (e["summary"] or "") for e in parsed["entries"])
    assert needle in text
    assert "Ã" not in text  # UTF-8 read as Latin-1 leaves "Ã©" and the like


def _rss(title: str, encoding_decl: str | None = None) -> str:
    decl = f'<?xml version="1.0" encoding="{encoding_decl}"?>' if encoding_decl else ""
    return (f'{decl}<rss version="2.0"><channel><title>Feed</title>'
            f"<item><title>{title}</title><link>http://example.test/a</link></item></channel></rss>")


@pytest.mark.parametrize("body,content_type", [
    (_rss("Zürich café").encode("latin-1"), "application/rss+xml; charset=utf-8"),  # header wrong: says UTF-8
    (_rss("Zürich café").encode("utf-8"), "text/xml; charset=iso-8859-1"),  # header wrong: says Latin-1
    (_rss("Zürich café", "iso-8859-1").encode("utf-8"), None),  # declaration wrong
    (_rss("Zürich café").encode("latin-1"), "text/xml"),  # nothing says anything (text/xml: RFC 3023 us-ascii)
    (_rss("Zürich café").encode("latin-1"), None),
    (_rss("Zürich café", "utf-16").encode("utf-16"), "application/xml"),  # BOM
    (_rss("Zürich café", "windows-1252").encode("cp1252"), "application/xml; charset=bogus-charset"),
])
def test_wrong_and_missing_charsets(body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    parsed = parse_feed(body, "http://example.test/feed", headers)
    assert parsed["entries"][0]["title"] == "Zürich café"


def test_charset_sniff_sources():
    assert charset.sniff(b"\xef\xbb\xbfabc", "text/html; charset=latin-1") == ("utf-8", "bom")
    assert charset.sniff("é".encode("latin-1"), "text/html; charset=utf-8") == ("cp1252", "fallback")
    page = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'.encode() + "Москва".encode("koi8-r")
    assert charset.sniff(page) == ("koi8-r", "declaration") and charset.decode(page)[0].endswith("Москва")
    assert charset.sniff("Москва".encode("utf-8"), "text/plain; charset=windows-1252") == ("utf-8", "utf-8")
    assert charset.sniff("日本".encode("shift_jis"), "text/html; charset=Shift_JIS") == ("shift_jis", "header")


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://news.example/section/">
  <title type="html">World &lt;b&gt;News&lt;/b&gt;</title>
  <entry>
    <id>tag:news.example,2024:1</id>
    <title type="html">Kyiv &amp;amp; &lt;i&gt;NATO&lt;/i&gt;</title>
    <link rel="alternate" href="2024/story-1.html"/>
    <published>2024-05-01T12:00:00+02:00</published>
    <updated>2024-05-02T08:30:00-04:00</updated>
    <author><name>Olena K.</name></author>
    <author><name>Desk</name><email>desk@news.example</email></author>
    <category term="Ukraine"/><category term="NATO"/><category term="Ukraine"/>
    <summary>Short.</summary>
    <content type="html">&lt;p&gt;Full text &lt;a href="/more"&gt;more&lt;/a&gt;&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;</content>
  </entry>
</feed>"""

RSS_FULL = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>Wire</title><link>http://wire.example/</link><ttl>30</ttl>
<item>
  <title>Plain &amp; simple</title>
  <guid isPermaLink="false">wire-42</guid>
  <link>/2024/05/story.html</link>
  <pubDate>Wed, 01 May 2024 10:00:00 EST</pubDate>
  <dc:creator>A. Reporter</dc:creator>
  <description>Teaser</description>
  <content:encoded><![CDATA[<p>The whole story, paragraph one.</p><p>Paragraph two.</p>]]></content:encoded>
  <media:thumbnail url="/img/1.jpg"/>
</item>
<item><guid isPermaLink="true">http://wire.example/permalink/43</guid><title>Permalink only</title></item>
<item><title>Bad link</title><link>javascript:alert(1)</link></item>
</channel></rss>"""


def test_atom_entry_normalised():
    parsed = parse_feed(ATOM, "https://news.example/feeds/atom.xml")
    assert parsed["format"] == "atom10" and parsed["title"] == "World News"
    (entry,) = parsed["entries"]
    assert entry["link"] == "http://news.example/section/2024/story-1.html"  # xml:base applied
    assert entry["guid"] == "tag:news.example,2024:1"
    assert entry["title"] == "Kyiv & NATO"
    assert entry["published_at"] == "2024-05-01T10:00:00+00:00"  # UTC
    assert entry["updated_at"] == "2024-05-02T12:30:00+00:00"
    assert entry["authors"] == ["Olena K.", "Desk"]
    assert entry["categories"] == ["Ukraine", "NATO"]
    assert "Full text" in entry["content"] and "<script" not in entry["content"]
    assert 'href="http://news.example/more"' in entry["content"]  # links inside content made absolute


def test_rss_entry_normalised_and_content_encoded_kept():
    parsed = parse_feed(RSS_FULL, "http://wire.example/rss")
    assert parsed["ttl"] == 30 and parsed["update_interval_s"] == 1800
    first, permalink, bad = parsed["entries"]
    assert first["link"] == "http://wire.example/2024/05/story.html"
    assert first["guid"] == "wire-42" and first["title"] == "Plain & simple"
    assert first["published_at"] == "2024-05-01T15:00:00+00:00"
    assert first["authors"] == ["A. Reporter"]
    assert first["content"].startswith("<p>The whole story") and first["summary"] == "Teaser"
    assert first["image"] == "http://wire.example/img/1.jpg"
    assert permalink["link"] == "http://wire.example/permalink/43"
    assert bad["link"] is None
    assert len({e["entry_id"] for e in parsed["entries"]}) == 3


def test_syndication_module_update_interval():
    body = (b'<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel><title>x</title>'
            b"<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency></channel></rss>")
    assert parse_feed(body, "http://example.test/")["update_interval_s"] == 1800


@pytest.mark.parametrize("version", ["1", "1.1"])
def test_json_feed(version):
    doc = {
        "version": f"https://jsonfeed.org/version/{version}", "title": "JSON News", "home_page_url": "https://j.example/",
        "authors": [{"name": "Desk"}], "language": "en",
        "items": [
            {"id": 1, "url": "/a", "title": "One", "content_html": "<p>Hi</p><script>bad()</script>",
             "date_published": "2024-05-01T12:00:00+02:00", "tags": ["NATO", "NATO", "Kyiv"],
             "author": {"name": "Old-style author"} if version == "1" else None},
            {"id": "2", "external_url": "https://elsewhere.example/b", "content_text": "Plain",
             "date_modified": "2024-05-03T00:00:00Z", "authors": [{"name": "B"}]},
            "not an item",
        ],
    }
    parsed = parse_feed(json.dumps(doc).encode("utf-8"), "https://j.example/feed.json",
                        {"content-type": "application/feed+json"})
    assert parsed["format"] == "json" + version.replace(".", "") and parsed["title"] == "JSON News"
    one, two = parsed["entries"]
    assert one["link"] == "https://j.example/a" and one["guid"] == "1"
    assert one["content"] == "<p>Hi</p>" and one["categories"] == ["NATO", "Kyiv"]
    assert one["published_at"] == "2024-05-01T10:00:00+00:00"
    assert one["authors"] == (["Old-style author"] if version == "1" else ["Desk"])
    assert two["link"] == "https://elsewhere.example/b" and two["authors"] == ["B"]
    assert two["published_at"] == two["updated_at"] == "2024-05-03T00:00:00+00:00"


def test_json_that_is_not_a_feed():
    with pytest.raises(FeedParseError):
        parse_feed(b'{"hello": "world"}', "https://j.example/x.json")
    with pytest.raises(FeedParseError):
        parse_feed(b"{not json", "https://j.example/x.json")


def test_html_page_is_not_a_feed():
    with pytest.raises(FeedParseError):
        parse_feed(b"<!doctype html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
                   "https://news.example/")


NEWS_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url>
    <loc>https://news.example/2024/05/01/nato-summit.html</loc>
    <lastmod>2024-05-01T13:00:00+02:00</lastmod>
    <news:news>
      <news:publication><news:name>News Example</news:name><news:language>en</news:language></news:publication>
      <news:publication_date>2024-05-01T12:00:00+02:00</news:publication_date>
      <news:title>NATO summit opens</news:title>
      <news:keywords>NATO, summit, Kyiv</news:keywords>
    </news:news>
  </url>
  <url><loc>https://news.example/about</loc><lastmod>2024-04-01</lastmod></url>
</urlset>"""


def test_google_news_sitemap():
    parsed = parse_feed(NEWS_SITEMAP, "https://news.example/news-sitemap.xml")
    assert parsed["format"] == "sitemap-news"
    story, about = parsed["entries"]
    assert story["link"] == "https://news.example/2024/05/01/nato-summit.html"
    assert story["title"] == "NATO summit opens" and story["categories"] == ["NATO", "summit", "Kyiv"]
    assert story["published_at"] == "2024-05-01T10:00:00+00:00" and story["language"] == "en"
    assert about["published_at"] == "2024-04-01T00:00:00+00:00" and about["title"] is None


def test_plain_gzipped_sitemap_and_index():
    plain = (b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             b"<url><loc>/a</loc></url><url><loc>https://s.example/b</loc></url></urlset>")
    parsed = parse_feed(gzip.compress(plain), "https://s.example/sitemap.xml.gz")
    assert parsed["format"] == "sitemap"
    assert [e["link"] for e in parsed["entries"]] == ["https://s.example/a", "https://s.example/b"]
    index = (b'<?xml version="1.0"?><!-- generated --><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             b"<sitemap><loc>https://s.example/news.xml</loc></sitemap></sitemapindex>")
    parsed = parse_feed(index, "https://s.example/index.xml")
    assert parsed["format"] == "sitemapindex" and parsed["sitemaps"] == ["https://s.example/news.xml"]
    assert parsed["entries"] == []


def test_sitemap_entities_not_expanded():
    evil = (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://s.example/&x;</loc></url></urlset>')
    parsed = parse_feed(evil, "https://s.example/sitemap.xml")
    assert all("root:" not in (e["link"] or "") for e in parsed["entries"])
