"""Boilerplate removal around trafilatura: a DOM pre-pass and a text post-pass.

trafilatura finds the story container well but keeps what publishers put inside it: photo
captions and agency credits, tag lists, embed markers, share and newsletter widgets, tracker
badges. The DOM pre-pass drops such blocks by structure (figcaption) and by class/id tokens before
trafilatura runs; the text post-pass catches what carries no markup, by the *shape* of a
boilerplate line (a credit in brackets at the end, a "Tags:" prefix, a lone "@YouTube"), never by
one word alone. Every rule counts what it removed, keyed by rule name, so leaks can be traced.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Optional

from trafilatura.utils import load_html

RULES_VERSION = "2026.11.1"

# class/id tokens of boilerplate blocks; a token matches when the word stands between - or _ edges
_BLOCK_WORDS = (
    "caption|credit|credits|wp-caption|photo-credit|image-credit|tags|tag-links|tags-links|post-tags|"
    "share|sharing|sharedaddy|social|social-links|related|relatedposts|jp-relatedposts|newsletter|"
    "subscribe|subscription|signup|promo|advert|advertisement|ad|ads|adslot|embed|video-embed|"
    "comments|comment-list|byline-share|author-bio|breadcrumb|breadcrumbs"
)
_BLOCK_TOKEN = re.compile(rf"(?:^|[-_])(?:{_BLOCK_WORDS})(?:$|[-_])", re.I)
_NEVER_DROP_TOKEN = re.compile(r"(?:^|[-_])(?:content|body|article|entry|story|main|post)(?:$|[-_])", re.I)
_DROP_TAGS = ("figcaption", "aside", "noscript", "iframe", "template")


def _tokens(el) -> list[str]:
    return (el.get("class") or "").split() + ([el.get("id")] if el.get("id") else [])


def _looks_like_block(el) -> Optional[str]:
    tokens = _tokens(el)
    hit = next((t for t in tokens if _BLOCK_TOKEN.search(t)), None)
    if not hit:
        return None
    # a container of the story itself that merely carries e.g. "has-caption" is never dropped
    if any(_NEVER_DROP_TOKEN.search(t) and not _BLOCK_TOKEN.search(t) for t in tokens):
        return None
    text_len = len(el.text_content())
    if text_len > 1500:
        link_len = sum(len(a.text_content()) for a in el.iter("a"))
        if link_len < 0.5 * text_len:
            return None
    return _BLOCK_TOKEN.search(hit).group(0).strip("-_").lower()


def prune_dom(tree, removed: Counter) -> None:
    """Drop caption, credit, tag-list, share, related, newsletter, embed and ad blocks in place."""
    doomed = []
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in _DROP_TAGS:
            doomed.append((el, f"dom:{el.tag}"))
            continue
        if el.tag in ("html", "body"):
            continue
        rule = _looks_like_block(el)
        if rule:
            doomed.append((el, f"dom:{rule}"))
    doomed_set = {el for el, _ in doomed}
    for el, rule in doomed:
        if any(anc in doomed_set for anc in el.iterancestors()):
            continue  # goes with its ancestor
        parent = el.getparent()
        if parent is None:
            continue
        # keep the tail text, which belongs to the parent
        if el.tail:
            prev = el.getprevious()
            if prev is not None:
                prev.tail = (prev.tail or "") + el.tail
            else:
                parent.text = (parent.text or "") + el.tail
        parent.remove(el)
        removed[rule] += 1


# ---- text post-pass -------------------------------------------------------------------------

_AGENCIES = r"(?:Getty|AP|Associated Press|Reuters|AFP|EPA|Shutterstock|Alamy|Pool|Bloomberg|PA|Xinhua|Sipa|ANP|dpa|WPA)"
_CREDIT_TAIL = re.compile(
    rf"[\(\[]\s*(?:(?:Photo|Image|Picture|Pic|Video|Credit)s?\s*(?:by|:|credit:?)?\s*[^()\[\]]{{0,120}}|[^()\[\]]{{0,80}}{_AGENCIES}[^()\[\]]{{0,60}})[\)\]]\s*\S{{0,40}}\s*$",
    re.I,
)
_CREDIT_LINE = re.compile(
    r"^(?:Photo|Image|Picture|Pic|Credit|Photograph|Illustration)s?\s*(?:credit)?\s*:\s*.{0,160}$", re.I
)
_AGENCY_PHOTO = re.compile(rf"\b(?:{_AGENCIES})(?:\s+Images|\s+Photo|/)\b", re.I)
_GETTY_CAPTION = re.compile(r"^[A-Z][A-Z .,'’-]{2,60}\s[-–—]\s[A-Z]{3,9}\.?\s\d{1,2}:\s")
_TAGS_LINE = re.compile(r"^(?:Tags?|Tagged(?: with)?|Topics|Keywords)\s*[:：]?\s*(?P<list>[^.!?]{1,300})$", re.I)
_TAGS_HEADER = re.compile(r"^(?:Tags?|Tagged|Topics|Keywords)\s*[:：]?$", re.I)
_EMBED = re.compile(
    r"^(?:@\s?(?:YouTube|Twitter|Instagram|Facebook|TikTok|Vimeo|X)|View this post on Instagram|"
    r"A post shared by .{1,80}|.{0,200}pic\.twitter\.com/\S+.{0,80}|\u2014\s?.{1,60}\(@\w+\)\s.{0,40}\d{4})$",
    re.I,
)
_WIDGET = re.compile(
    r"^(?:Real[- ]Time Analytics|Web Analytics|Advertisement|ADVERTISEMENT|Sponsored(?: content)?|"
    r"Story continues below(?: advertisement)?|Continue reading(?: below)?|Read more(?:[:.…].{0,150})?|"
    r"Read also:.{0,150}|Related(?: (?:stories|articles|coverage|content))?\s*:.{0,200}|Related|"
    r"Share (?:this|on \w+).{0,60}|Follow us on .{0,120}|Sign up for .{0,200}|Subscribe to .{0,200}|"
    r"Click here to .{0,160}|Watch:?\s.{0,120}\|\s*Video|Listen to this article.{0,40}|"
    r"(?:©|\(c\)|Copyright)\s*(?:\d{4}|[A-Z]).{0,160}|All rights reserved\.?.{0,80})$",
    re.I,
)
_ALNUM = re.compile(r"\w+", re.U)


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).lower()
    return " ".join(_ALNUM.findall(s))


def split_tags(raw: str) -> list[str]:
    parts = re.split(r"\s*[,;|•·]\s*", raw.strip())
    return [p.strip() for p in parts if p.strip() and len(p.strip()) <= 60]


def classify_line(line: str, title: Optional[str] = None, first: bool = False) -> Optional[str]:
    """Return the name of the rule that marks ``line`` as boilerplate, or None to keep it."""
    s = line.strip()
    if not s:
        return "empty"
    if first and title and _norm(s) == _norm(title):
        return "repeated_headline"
    if _EMBED.match(s):
        return "embed"
    if len(s) <= 260 and _WIDGET.match(s):
        return "widget"
    if _CREDIT_LINE.match(s):
        return "credit"
    if _CREDIT_TAIL.search(s) and (_AGENCY_PHOTO.search(s) or re.search(r"\b(?:Photo|Image|Picture)s?\b", s, re.I)):
        return "caption"
    if _GETTY_CAPTION.match(s) and len(s) < 900:
        return "caption"
    return None


def clean_text(text: str, title: Optional[str], removed: Counter) -> tuple[str, list[str]]:
    """Drop boilerplate lines; return the clean text and the tags found in "Tags:" lines."""
    lines = [ln.strip() for ln in text.split("\n")]
    kept: list[str] = []
    tags: list[str] = []
    expect_tag_list = False
    for ln in lines:
        if not ln:
            continue
        if expect_tag_list:
            expect_tag_list = False
            if len(ln) <= 300 and not re.search(r"[.!?]\s", ln) and ("," in ln or len(ln.split()) <= 4):
                tags.extend(split_tags(ln))
                removed["tags"] += 1
                continue
        if _TAGS_HEADER.match(ln):
            expect_tag_list = True
            removed["tags"] += 1
            continue
        m = _TAGS_LINE.match(ln)
        if m and ("," in m.group("list") or len(m.group("list").split()) <= 4) and ":" in ln[:12]:
            tags.extend(split_tags(m.group("list")))
            removed["tags"] += 1
            continue
        rule = classify_line(ln, title, first=not kept)
        if rule:
            removed[rule] += 1
            continue
        kept.append(ln)
    return "\n".join(kept), tags


def parse_html(data: bytes | str):
    """Parse bytes or text into an lxml tree exactly as trafilatura would; None when empty.

    trafilatura's own loader (encoding guess, comments and processing instructions dropped)
    matters: a tree from ``lxml.html`` keeps comment nodes, and trafilatura then loses the text
    that follows a comment inside a paragraph.
    """
    if isinstance(data, bytes):
        data = data.lstrip()
    if not data:
        return None
    try:
        return load_html(data)
    except (TypeError, ValueError):
        return None
