"""Which character encoding a fetched feed or page is in.

Servers lie about charsets in both directions: a ``charset=utf-8`` header on Latin-1 bytes, an
``iso-8859-1`` header on UTF-8 bytes, no declaration at all. The rule here, in order:

1. a byte-order mark (it cannot be there by accident);
2. UTF-16/32 without a BOM, recognised from how ``<?xml`` is laid out (XML 1.0 appendix F);
3. the HTTP ``Content-Type`` charset, then the document's own declaration (XML declaration, or
   HTML ``<meta charset>`` / ``http-equiv``) - each only if the bytes actually decode with it,
   and a single-byte Western label loses to bytes that are valid, non-ASCII UTF-8 (Latin-1 text is
   practically never valid UTF-8 by accident, while UTF-8 mislabelled Latin-1 is common);
4. UTF-8 if the bytes are valid UTF-8;
5. windows-1252, the web's de facto default (as in the WHATWG Encoding standard, which also
   decodes ``iso-8859-1`` and ``us-ascii`` labels as windows-1252).
"""
from __future__ import annotations

import codecs
import re
from typing import Optional

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_WITHOUT_BOM = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),  # EBCDIC "<?xm"
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';,\s]+)""", re.I)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_WESTERN_SINGLE_BYTE = {"cp1252", "latin_1", "iso8859_15", "ascii"}


def normalise(label: Optional[str]) -> Optional[str]:
    """Python codec name for an encoding label, or None if unknown; Latin-1/ASCII read as cp1252."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    if name in ("latin-1", "iso8859-1", "ascii", "us-ascii"):
        return "cp1252"
    return name.replace("-", "_") if name.startswith("iso8859") else name


def _codec_key(name: str) -> str:
    return codecs.lookup(name).name.replace("-", "_")


def _decodes(body: bytes, encoding: str) -> bool:
    try:
        body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return encoding == "cp1252" and _decodes(body, "latin-1")  # cp1252's 5 holes: read as C1
    return True


def _is_non_ascii_utf8(body: bytes) -> bool:
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def header_charset(content_type: Optional[str]) -> Optional[str]:
    m = _HEADER_CHARSET.search(content_type or "")
    return m.group(1) if m else None


def declared_charset(body: bytes) -> Optional[str]:
    """The encoding the document declares for itself: XML declaration or HTML meta."""
    head = body[:4096]
    m = _XML_DECL.match(head) or _META_CHARSET.search(head)
    return m.group(1).decode("ascii") if m else None


def sniff(body: bytes, content_type: Optional[str] = None) -> tuple[str, str]:
    """Return ``(codec, source)``; source is bom, layout, header, declaration, utf-8 or fallback."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, "bom"
    for prefix, name in _XML_WITHOUT_BOM:
        if body.startswith(prefix):
            return name, "layout"
    utf8_wins = None  # computed once, only if a single-byte Western label needs it
    for label, source in ((header_charset(content_type), "header"), (declared_charset(body), "declaration")):
        name = normalise(label)
        if not name:
            continue
        if _codec_key(name) in _WESTERN_SINGLE_BYTE:
            if utf8_wins is None:
                utf8_wins = _is_non_ascii_utf8(body)
            if utf8_wins:
                return "utf-8", "utf-8"
        if name.startswith("utf_16") or name.startswith("utf_32") or name.startswith("utf-16") or name.startswith("utf-32"):
            continue  # a UTF-16/32 label on bytes without a BOM or UTF-16 layout is wrong
        if _decodes(body, name):
            return name, source
    if _decodes(body, "utf-8"):
        return "utf-8", "utf-8"
    return "cp1252", "fallback"


def decode(body: bytes, content_type: Optional[str] = None) -> tuple[str, str, str]:
    """``(text, codec, source)``: the body as text, without a BOM, never raising."""
    encoding, source = sniff(body, content_type)
    if source == "bom":
        body = body[len(next(b for b, n in _BOMS if n == encoding)):]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError:
        text = body.decode("latin-1" if encoding == "cp1252" else encoding, errors="replace")
    return text.lstrip("\ufeff"), encoding, source


_XML_DECL_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)(["'])[^"']*\2""", re.I)


def to_utf8_xml(body: bytes, content_type: Optional[str] = None) -> tuple[bytes, str, str]:
    """XML bytes re-encoded as UTF-8 with the declaration saying so: ``(bytes, codec, source)``.

    Handing a parser bytes whose encoding is already settled keeps this module's rule the only
    one; the parser's own guesses (RFC 3023's us-ascii default for text/xml, for one) never run.
    """
    text, encoding, source = decode(body, content_type)
    text = _XML_DECL_ENCODING.sub(r"\1\2utf-8\2", text, count=1)
    return text.encode("utf-8", errors="surrogatepass"), encoding, source
