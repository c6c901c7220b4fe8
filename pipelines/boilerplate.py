"""Boilerplate removal around trafilatura: a DOM pre-pass and a text post-pass.

trafilatura finds the story container well but keeps what publishers put inside it: photo
captions and agency credits, tag lists, embed markers, share, related and newsletter widgets,
tracker badges, hover cards. The DOM pre-pass (:func:`prune_dom`) drops such blocks before
trafilatura runs, by structure (figcaption, a list whose every item is a bare link, a card of
links and a picture inside a sentence) and by class/id tokens, guarded so that a container of
the story itself is never dropped. The text post-pass (:func:`clean_text`) catches what carries no
markup, by the *shape* of a boilerplate line (a credit in brackets at the end, a "Tags:" prefix, a
lone "@YouTube", a line made only of calls to action), never by one word alone: "Reuters
reported", "photos show" or "related to" inside a sentence leave it in place.

Every rule counts what it removed, keyed by rule name (``dom:...`` or ``text:...``), so a change
of rules can be traced and a publisher whose pages start to leak can be seen.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from typing import Iterable, Optional

from lxml import etree, html
from trafilatura.utils import HTML_PARSER, load_html

RULES_VERSION = "2026.11.3"

# ---- DOM pre-pass ----------------------------------------------------------------------------

# class/id words of boilerplate blocks, by kind. A class token is cut at "-" and "_"; a word
# matches one part or two adjacent parts written together ("wp-caption-text", "tag-list",
# "jp-relatedposts"), never the inside of a word ("shadow" holds no "ad"). Set lookups, no
# regular expression: pages carry thousands of class names.
_BLOCK_KINDS = {
    "caption": "caption captions credit credits photocredit photocredits imagecredit imagecredits imgcredit copyright",
    "tags": "tags taglist taglinks tagslinks tagcloud keywords",
    "share": "share shares sharing sharedaddy sharebuttons sharebar social sociallinks socialshare addthis addtoany a2a",
    "related": "related relatedposts relatedarticles recommended recirculation readmore morestories mostpopular "
               "mostread trending outbrain taboola",
    "newsletter": "newsletter subscribe subscription signup optin mailchimp mc4wp",
    "ad": "ad ads advert adverts advertisement adslot adcontainer dfp sponsored promo promoted",
    "embed": "embed videoembed oembed instagrammedia tiktokembed fbvideo youtubeplayer",
    "tracker": "analytics tracking tracker pixel clicky statcounter",
    "comments": "comments commentlist commentrespond disqus",
    "chrome": "breadcrumb breadcrumbs authorbio authorbox aboutauthor printbutton toolbar skiplink",
}
_KIND_OF_WORD = {word: kind for kind, words in _BLOCK_KINDS.items() for word in words.split()}
# a container of the story itself ("entry-content has-caption") is never dropped for a word
_STORY_WORDS = frozenset("content body article entry story main post text".split())


def _token_kind(token: str) -> Optional[str]:
    parts = token.lower().replace("_", "-").split("-")
    for i, part in enumerate(parts):
        kind = _KIND_OF_WORD.get(part) or (i + 1 < len(parts) and _KIND_OF_WORD.get(part + parts[i + 1]))
        if kind:
            return kind
    return None


def _has_story_word(names: str) -> bool:
    return any(part in _STORY_WORDS for part in names.lower().replace("_", "-").replace(" ", "-").split("-"))


_DROP_TAGS = {"figcaption": "figcaption", "noscript": "embed", "iframe": "embed", "template": "embed"}
# tags whose class words are trusted; an <a> or <em> is part of a sentence and stays
_BLOCK_TAGS = {"div", "section", "aside", "ul", "ol", "li", "p", "span", "figure", "footer", "nav", "form",
               "table", "dl", "header", "small", "h2", "h3", "h4", "h5", "h6"}
_LABEL_TAGS = ("strong", "b", "em", "dt", "label")  # may hold a "Tags:" label; their class words are not trusted
_WALK_TAGS = tuple(_BLOCK_TAGS) + tuple(_DROP_TAGS) + _LABEL_TAGS


def _class_id(el) -> str:
    return f"{el.get('class') or ''} {el.get('id') or ''}"


def _block_kind(el) -> Optional[str]:
    """The boilerplate kind named by the element's class/id tokens, or None."""
    kind = _names_kind(_class_id(el))
    return None if kind is None or _is_prose(el) else kind


def _is_link_list(el) -> bool:
    """A list of two or more items that are each nothing but one short link: related or nav."""
    items = [li for li in el if li.tag == "li"]
    if len(items) < 2 or len(items) != len(el):
        return False
    for li in items:
        text = " ".join(li.text_content().split())
        links = [a for a in li.iter("a")]
        if not text or len(links) != 1 or len(text) > 160:
            return False
        if len(" ".join(links[0].text_content().split())) < 0.9 * len(text):
            return False
    return True


def _hover_cards(tree) -> list:
    """Cards (a picture plus several links) hidden inside a sentence, shown on hover."""
    cards = []
    for img in tree.iter("img"):
        card = None
        for anc in img.iterancestors():
            if anc.tag == "p":
                if card is not None:
                    cards.append(card)
                break
            if card is None and anc.tag == "span" and len(anc.findall(".//a")) >= 2:
                card = anc
    return cards


def _lift_tweets(tree, removed: Counter) -> None:
    """Keep quoted tweets (story content) even inside a social/embed wrapper the pre-pass drops."""
    for quote in tree.iter("blockquote"):
        if "twitter-tweet" not in (quote.get("class") or ""):
            continue
        for anc in quote.iterancestors():
            if anc.tag in ("body", "html") or _has_story_word(_class_id(anc)):
                break
            if _block_kind(anc) in ("share", "embed"):
                anc.addprevious(quote)
                quote.tail = None
                removed["dom:tweet_kept"] += 1
                break


def _remove(el) -> None:
    """Remove an element but keep its tail text, which belongs to the parent."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail and el.tail.strip():
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


@functools.lru_cache(maxsize=1 << 16)
def _names_kind(names: str) -> Optional[str]:
    """The boilerplate kind named by class/id tokens, or None.

    Memoised for the process: the class/id values of a site's template repeat on every page.
    """
    kind = None
    story = False
    for token in names.split():
        token_kind = _token_kind(token)
        if token_kind:
            kind = kind or token_kind
        elif _has_story_word(token):
            story = True
    return None if story else kind


def _is_prose(el) -> bool:
    """A big block of prose is the story whatever its name says ("post-share-wrapper" around it)."""
    text_len = len(el.text_content())
    if text_len <= 1500:
        return False
    return sum(len(a.text_content()) for a in el.iter("a")) < 0.5 * text_len


def _tag_list_block(label) -> tuple[Optional[object], list[str]]:
    """The block a "Tags:"/"Topics:" label heads, and the tags it lists (its links, or its text)."""
    block = label if label.find(".//a") is not None else label.getparent()
    if block is None or block.tag in ("body", "html") or len(block.text_content()) > 400:
        return None, []
    links = [" ".join(a.text_content().split()) for a in block.iter("a")]
    if links:
        return block, [t for t in links if t]
    rest = " ".join(block.text_content().split())[len(" ".join((label.text or "").split())):]
    return (block, split_tags(rest)) if _looks_like_tag_list(rest) else (None, [])


def _unwrap_layout_tables(tree, removed: Counter) -> None:
    """A table holding the story in one cell is layout: make it divs, so <br> paragraphs stay lines."""
    for table in list(tree.iter("table")):
        cells = [td for td in table.iter("td") if len(td.text_content()) > 500]
        if not cells or any(anc.tag == "table" for anc in table.iterancestors()):
            continue
        for el in table.iter("table", "tbody", "thead", "tfoot", "tr", "td", "th"):
            el.tag = "div"
        removed["dom:layout_table"] += 1


def prune_dom(tree, removed: Counter) -> list[str]:
    """Drop caption, credit, tag-list, share, related, newsletter, embed, ad and tracker blocks.

    One pass over the block elements in C-filtered document order; the class/id verdict is
    memoised per distinct attribute value (see :func:`_names_kind`), so the pass costs little
    more than the walk itself.
    Returns the tags of the tag lists it removed.
    """
    _lift_tweets(tree, removed)
    _unwrap_layout_tables(tree, removed)
    doomed: list = [(card, "dom:hover_card") for card in _hover_cards(tree)]
    tags: list[str] = []
    for el in tree.iter(*_WALK_TAGS):
        tag = el.tag
        label = el.text
        if label and len(label) < 40 and _TAGS_HEADER.match(label.strip()):
            block, listed = _tag_list_block(el)
            if block is not None:
                doomed.append((block, "dom:tags"))
                tags += listed
                continue
        if tag in _LABEL_TAGS:
            continue
        if tag in _DROP_TAGS:
            doomed.append((el, f"dom:{_DROP_TAGS[tag]}"))
            continue
        names = f"{el.get('class') or ''} {el.get('id') or ''}"
        if names != " ":
            kind = _names_kind(names)
            if kind and not _is_prose(el):
                doomed.append((el, f"dom:{kind}"))
                continue
        if tag in ("ul", "ol") and _is_link_list(el):
            doomed.append((el, "dom:link_list"))
    root = tree.getroottree().getroot() if hasattr(tree, "getroottree") else tree
    for el, rule in doomed:
        if el.getroottree().getroot() is not root:
            continue  # went with an ancestor
        _remove(el)
        removed[rule] += 1
    return tags


# ---- text post-pass --------------------------------------------------------------------------

# agency names as written (case-sensitive: "(ePA)" or "the pool" are not credits)
_AGENCIES = (r"(?-i:Getty(?:\s+Images)?|GETTY(?: IMAGES)?|AP|Associated Press|Reuters|REUTERS|AFP|EPA(?:-EFE)?|EFE|"
             r"Shutterstock|Alamy|Bloomberg|PA(?: Images| Wire)?|Xinhua|Sipa(?: USA)?|ANP|dpa|WPA Pool|Pool|"
             r"iStock(?:photo)?|NurPhoto|SOPA Images|TASS|Anadolu(?: Agency)?|UPI|Zuma(?: Press)?|ZUMA|Rex Features|"
             r"Kyodo|Yonhap)")
_PHOTO_WORD = r"(?:Photo(?:graph)?s?|Images?|Pictures?|Pics?|Video|Footage|Illustrations?|Graphics?|Credits?)"
# "(Photo by X/Getty Images)", "[Image: Reuters]", "(AP Photo/Name)", "(Getty)" closing a line
_CREDIT_BRACKET = re.compile(
    rf"[(\[]\s*(?:{_PHOTO_WORD}\b[^()\[\]]{{0,120}}|[^()\[\]]{{0,80}}\b(?:{_AGENCIES})\b[^()\[\]]{{0,60}})"
    rf"[)\]]\W{{0,3}}(?:\S+\W{{0,3}}){{0,2}}$",
    re.I,
)
# "Photo: X", "Photograph: Name/Agency", "Credit: X", "Image credit: X" starting a short line
_CREDIT_LEAD = re.compile(rf"^{_PHOTO_WORD}(?:\s+(?:by|credit|courtesy(?: of)?))?\s*[:|/]\s*\S.{{0,160}}$", re.I)
# "... Photo: Name/Reuters", "... photos © Name, 2018", "... REUTERS/Name", "... | Getty Images" ending a line
_CREDIT_TAIL = re.compile(
    rf"(?:\b{_PHOTO_WORD}(?:\s+(?:by|credit|courtesy(?: of)?))?\s*[:©|]|[|/]\s*(?:{_AGENCIES})\b|"
    rf"\b(?:{_AGENCIES})\s*/|©|\bvia (?:{_AGENCIES})\b)[^.!?]{{0,80}}\.?$",
    re.I,
)
_CREDIT_HINTS = ("photo", "image", "picture", "pic", "video", "footage", "illustr", "graphic", "credit", "©", "/", "|",
                 "via ")
# Getty-style caption: "LONDON, ENGLAND - MARCH 15: ..."
_DATELINE_CAPTION = re.compile(r"^[A-Z][A-Z .,'’-]{2,60}\s[-–—]\s[A-Z]{3,9}\.?\s\d{1,2}(?:,\s\d{4})?:\s")

_TAG_LABEL = r"(?:Tags?|Tagged(?: (?:with|in|as))?|Topics?|Keywords?|Filed under|Categories|Category|More on|Themen|Schlagw(?:ö|oe)rter)"
_TAGS_LINE = re.compile(rf"^{_TAG_LABEL}\s*[:：|]\s*(?P<list>.{{1,300}}?)\s*\|?$", re.I)
_TAGS_HEADER = re.compile(rf"^{_TAG_LABEL}\s*[:：]?$", re.I)

_EMBED_LINE = re.compile(
    r"^(?:@\s?(?:YouTube|Twitter|Instagram|Facebook|TikTok|Vimeo|X|Spotify|SoundCloud|Reddit|Threads|Bluesky)|"
    r"\[/?(?:embed|video|audio|caption|button|gallery|tweet|youtube|instagram)\b[^\]]*\].*|"
    r"(?:View|See) (?:this|the full) post on (?:Instagram|Facebook|X|Twitter|TikTok)|"
    r"A post shared by .{1,120}|"
    r"(?:Watch|View|Listen|Play)(?: (?:this|the) (?:video|clip|episode))?(?: on| at) (?:YouTube|Vimeo|Twitter|X|Spotify|SoundCloud|Instagram|TikTok|Facebook)\.?|"
    r"(?:Embedded|Embed(?:ded)? (?:video|content|tweet|post)|Loading (?:video|player|tweet|embed)).{0,40}|"
    r"(?:Your browser does not support|This (?:video|embed|content) (?:is|can ?not be|cannot be) (?:not )?(?:available|played|displayed)).{0,120}|"
    r"(?:pic\.twitter\.com|t\.co|youtu\.be|(?:www\.)?(?:youtube|instagram|tiktok|twitter|x)\.com)/\S+|"
    r"https?://\S+)$",
    re.I,
)
_EMBED_LINK = re.compile(r"\s*\bpic\.twitter\.com/\w+")

_WIDGET_LINE = re.compile(
    r"^(?:Real[- ]?Time (?:Web )?Analytics|Web Analytics|Analytics by .{1,40}|Site ?Meter|StatCounter.{0,40}|"
    r"Advertisement|Advertising|Adverti[sz]ement - (?:Scroll|Continue).{0,40}|Sponsored(?: (?:content|links?|by .{1,60}))?|"
    r"Paid (?:content|post|partner)(?: by .{1,60})?|Promoted(?: (?:content|stories|links))?|"
    r"(?:Article|Story) continues (?:below|after).{0,40}|Continue reading(?: (?:below|the (?:main )?(?:story|article)))?.{0,3}|"
    r"Scroll (?:down )?to continue.{0,40}|Skip (?:Ad|advert).{0,20}|"
    r"Share(?: (?:this|the|on|via|article|story|page|post)\b.{0,60}|:)?|Print(?: this (?:article|page|story))?|"
    r"E-?mail(?: this (?:article|page|story))?|Comments?(?: \(\d+\))?|\d+ comments?|Leave a (?:comment|reply)|"
    r"Tell us what you think.{0,20}|Post a comment|Show comments|"
    r"Copyright\s*(?:©|\(c\))?\s*\d{4}.{0,160}|(?:©|\(c\))\s*(?:\d{4}|[A-Z]).{0,160}|"
    r"Copyright\b.{0,100}(?:\d{4}|All rights reserved)\.?|All rights reserved\.?.{0,80}|"
    r"This (?:material|article|story) may not be (?:published|reproduced|copied).{0,160})$",
    re.I,
)
# a label and a headline: "Related: ...", "SEE MORE: ...", "READ MORE - ..."; or the label alone
_TEASER_LABEL = (r"(?:Related(?: (?:stories|story|articles?|content|coverage|links?|posts?|reading|news|video))?|"
                 r"(?:See|Read|Watch|Listen|Click)(?: (?:more|also|next|now|here))?|Also read|Read also|More|"
                 r"More (?:from|on|about|stories|news|coverage|headlines)(?: [\w' .&-]{1,40})?|"
                 r"(?:You|We think you) (?:may|might|will|could) (?:also )?(?:like|enjoy|be interested in)|"
                 r"Recommended(?: (?:for you|stories|reading|articles))?|Don'?t miss|Must read|Top stories|"
                 r"Most (?:popular|read|viewed|shared)|Trending(?: now| stories)?|Further reading|"
                 r"In (?:other|related) news|Also on [\w .]{1,30}|Editor'?s picks?|Latest (?:news|stories))")
_TEASER_WITH_HEADLINE = re.compile(rf"^{_TEASER_LABEL}\s*(?:[:»›|>]|\s[-–—]|\.\.\.|…)\s*(?P<rest>.{{0,200}})$", re.I)
_TEASER_HEADER = re.compile(rf"^{_TEASER_LABEL}\s*(?:[:»›|>]|\.\.\.|…)?$", re.I)
_HEADLINE_BADGE = re.compile(r"\[(?:VIDEO|PICS|PHOTOS?|INSIGHT|REACTION|POLL|LATEST|LIVE|REVEAL|MAP|GRAPHIC|WATCH)\]\s*\|?$", re.I)

# calls to action: a line made only of such sentences is a widget, however it is worded
_CTA_SENTENCE = re.compile(
    r"^(?:Follow (?:us|him|her|them|me|the author|[A-Z][\w.&' -]{0,40}) on (?:Twitter|X|Facebook|Instagram|"
    r"LinkedIn|TikTok|Threads|YouTube|Bluesky|Mastodon|Google News|Flipboard|WhatsApp|Telegram)|"
    r"(?:Sign up|Subscribe|Register|Join)(?: (?:now|today|here|free|for free))?(?: (?:for|to)\b)|Subscribe(?: now| today| here)?$|"
    r"Get (?:the|our) (?:latest|best|top|free|daily|weekly|morning|evening).{0,80}(?:newsletter|inbox|email|app|updates|alerts)|"
    r"Get .{1,60} (?:delivered|straight|sent|direct) (?:to|through|into|right to) your|"
    r"(?:Download|Get) (?:the|our) .{1,40} app|"
    r"(?:Click|Tap) here (?:to|and) (?:subscribe|sign up|register|join|follow|download (?:the|our)|get (?:the|our) "
    r"(?:newsletter|app|free)|support)|"
    r"Listen to .{1,60} (?:live|on (?:Spotify|Apple|BBC Sounds))|Listen back|"
    r"Have a (?:news )?tip|Got a (?:news )?tip|Send us (?:a|your) tip|Contact (?:us|the author|the reporter)|"
    r"[A-Z][\w.' -]{1,40} (?:may|can) be reached at|(?:Email|E-mail|Write to) (?:us|him|her|them|the author)? ?(?:at|:)|"
    r"If you (?:enjoyed|liked|value|appreciate) (?:this|our)|Support (?:our|independent) journalism|"
    r"Become a (?:member|subscriber|patron)|Already a (?:member|subscriber)|"
    r"Get access to|Use (?:the )?(?:promo )?code|Members get|Thanks for (?:signing up|subscribing|reading)|"
    r"Keep an eye on your inbox|Sorry!?$|There was an error processing your|"
    r"Send us your|Tell us what (?:you|YOU) think|Share your (?:thoughts|views|story))",
    re.I,
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])\s+(?=[\"“'‘(A-Z0-9])")
_WORD = re.compile(r"\w+", re.U)


def _norm(s: str) -> str:
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", s).lower()))


def split_tags(raw: str) -> list[str]:
    """Split a "Tags:" list or a keywords string into tags."""
    parts = re.split(r"\s*[,;|•·]\s*|\s+/\s+", raw.strip().strip("|").strip())
    return [p.strip(" .") for p in parts if p.strip(" .") and len(p.strip()) <= 60]


def _looks_like_tag_list(items: str) -> bool:
    """A list of names, not a sentence: short items, no sentence punctuation."""
    if re.search(r"[.!?]\s|[.!?]$", items) and "," not in items:
        return False
    tags = split_tags(items)
    return bool(tags) and all(len(t.split()) <= 6 for t in tags) and (len(tags) > 1 or len(items.split()) <= 5)


def _is_headline_like(line: str) -> bool:
    """A short line that reads as a teaser headline rather than a sentence of prose."""
    s = line.lstrip("-•* ").strip()
    if not s or len(s) > 160:
        return False
    if _HEADLINE_BADGE.search(s):
        return True
    return not re.search(r"[.!?:;,]\W?$", s) or len(s.split()) <= 12 and not s.endswith((".", ","))


def _is_headline(line: str, titles: Iterable[str]) -> bool:
    """The line repeats the page title (exactly, or with/without a site name or kicker)."""
    if len(line) > 300 or line.endswith("."):
        return False
    words = set(_norm(line).split())
    if not words:
        return False
    for title in titles:
        twords = set(_norm(title).split())
        if not twords:
            continue
        shared = len(words & twords)
        if shared / len(words | twords) >= 0.8 or (shared == len(twords) and len(words) <= len(twords) + 6) \
                or (shared == len(words) and len(words) >= 0.6 * len(twords)):
            return True
    return False


def _is_cta(line: str) -> bool:
    """Every sentence of the line is a call to action (follow, subscribe, click, contact...)."""
    if len(line) > 500 or not _CTA_SENTENCE.match(line.lstrip(" -–—•*")):
        return False
    sentences = [s for s in _SENTENCE_SPLIT.split(line) if s.strip()]
    return all(_CTA_SENTENCE.match(s.strip(" -–—•*")) for s in sentences)


def _is_caption(line: str) -> bool:
    """A photo caption or credit line: closed by a bracketed/labelled credit, or a credit alone."""
    if len(line) <= 200 and _CREDIT_LEAD.match(line):
        return True
    tail = line[-220:]  # credits close a line: only its end is searched, and only when a hint is there
    end = tail[-40:]
    if len(line) <= 1200 and (")" in end or "]" in end) and _CREDIT_BRACKET.search(tail):
        return True
    if len(line) <= 300:
        low = tail[-140:].lower()
        if any(hint in low for hint in _CREDIT_HINTS) and _CREDIT_TAIL.search(tail):
            return True
    return len(line) < 1200 and bool(_DATELINE_CAPTION.match(line))


def classify_line(line: str, titles: Iterable[str] = (), first: bool = False) -> Optional[str]:
    """Return the name of the rule that marks ``line`` as boilerplate, or None to keep it."""
    s = line.strip()
    if not s:
        return "empty"
    if first and _is_headline(s, titles):
        return "repeated_headline"
    if len(s) <= 300:  # widgets, embeds and teasers are short; prose skips these patterns
        if _EMBED_LINE.match(s):
            return "embed"
        if len(s) <= 260 and _WIDGET_LINE.match(s):
            return "widget"
        if _TEASER_HEADER.match(s):
            return "teaser"
        m = _TEASER_WITH_HEADLINE.match(s)
        if m and _is_headline_like(m.group("rest") or "x"):
            return "teaser"
    if _is_cta(s):
        return "call_to_action"
    if _is_caption(s):
        return "caption"
    return None


def _is_standfirst(line: str, description: Optional[str]) -> bool:
    """The page's description repeated as an unpunctuated first line: a standfirst, not the lead."""
    return bool(description) and len(line.split()) >= 6 and not line.endswith((".", "!", "?", '"', "”", "…")) \
        and _norm(line) == _norm(description)


def clean_text(text: str, titles: Iterable[str] | str | None, removed: Counter,
               description: Optional[str] = None) -> tuple[str, list[str]]:
    """Drop boilerplate lines; return the clean text and the tags found in "Tags:" lines.

    Context rules: a "Tags"/"Filed under" header takes the list on the next line with it, and a
    teaser header ("Related", "Don't miss", "You may also like") takes the run of headline-like
    lines that follows it.
    """
    if isinstance(titles, str):
        titles = [titles]
    titles = [t for t in titles or () if t]
    kept: list[str] = []
    tags: list[str] = []
    expect_tags = teaser_header = False
    teaser_run = 0
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if expect_tags:
            expect_tags = False
            if len(line) <= 300 and _looks_like_tag_list(line):
                tags.extend(split_tags(line))
                removed["text:tags"] += 1
                continue
        if teaser_run:
            # the list a teaser label heads: list items, or short headlines after a bare label
            if teaser_run > 0 and len(line) < 200 and (line.startswith(("- ", "• ")) or
                                                      (teaser_header and _is_headline_like(line))):
                teaser_run -= 1
                removed["text:teaser"] += 1
                continue
            teaser_run = 0
        if _TAGS_HEADER.match(line):
            expect_tags = True
            removed["text:tags"] += 1
            continue
        m = _TAGS_LINE.match(line)
        if m and _looks_like_tag_list(m.group("list")):
            tags.extend(split_tags(m.group("list")))
            removed["text:tags"] += 1
            continue
        if not kept and _is_standfirst(line, description):
            removed["text:standfirst"] += 1
            continue
        rule = classify_line(line, titles, first=not kept)
        if rule:
            removed[f"text:{rule}"] += 1
            if rule == "teaser":
                teaser_run, teaser_header = 8, bool(_TEASER_HEADER.match(line))
            continue
        stripped = _EMBED_LINK.sub("", line) if "pic.twitter.com/" in line else line
        if stripped != line:
            removed["text:embed_link"] += 1
        kept.append(stripped)
    return "\n".join(kept), tags


def _c_level_element_classes(parser) -> None:
    """Give ``parser``'s trees HtmlElement proxies from a C-level lookup.

    lxml.html's default lookup is a Python method called for every element proxy created (about
    2,300 per page across trafilatura's passes); it only adds form-control subclasses, which no
    step uses. Same output on every measured page, extraction about 8% faster. The parser is
    trafilatura's own, so the trees stay exactly the ones it builds.
    """
    parser.set_element_class_lookup(etree.ElementDefaultClassLookup(
        element=html.HtmlElement, comment=html.HtmlComment, pi=html.HtmlProcessingInstruction,
        entity=html.HtmlEntity))


_c_level_element_classes(HTML_PARSER)


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
