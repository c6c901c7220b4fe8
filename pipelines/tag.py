"""Topic tagging with evidence.

A topic applies when it is a *substantive subject* of the article (DESIGN.md): the topic or one of
its named representatives appears in the title or the lead, or in at least two separate sentences
of the body. One passing mention is not a tag, and a mention inside an enumeration of three or more
countries ("exports to Egypt, Turkey and Ukraine") counts only in an article that also speaks of the
country outside the enumeration. Wire credits ("Reporting by ... in Kyiv") are not the story.

Every term of every topic, in every language, is matched in one pass of an Aho-Corasick automaton
over a folded copy of the text: NFKC, lower case, every character that is not a letter or digit a
space, Cyrillic letters that look Latin folded onto Latin, and a space in front, so that each
needle (" kyiv") starts at a word start; the end of the word is checked on each hit. Positions map
back to the original text, so every piece of evidence points at what the reader sees. The taxonomy
(taxonomy.yaml) says what each term is:

- primary terms name the topic on their own; support terms ("the alliance", "Russian") count only
  in an article that also has a primary term of the topic;
- exclusion phrases mask the mentions they cover ("speaks Russian", "chicken Kiev");
- namesake cues switch a name off for the whole article ("Moscow, Idaho" once means that every
  "Moscow" in that story is the town in Idaho);
- the `countries` set feeds the enumeration rule.

The score grows with a mention in the title, in the lead, and with the number of sentences.
``TaxonomyWatcher`` lets a long-running worker pick up an edited taxonomy without a restart.
"""
from __future__ import annotations

import bisect
import codecs
import dataclasses
import functools
import hashlib
import itertools
import logging
import math
import os
import re
import time
import unicodedata
from importlib import resources
from typing import Any, Callable, Iterable, Iterator, Optional

import ahocorasick
import yaml

log = logging.getLogger(__name__)

PRIMARY, SUPPORT, EXCLUDE, CUE, COUNTRY = range(5)
MAX_EVIDENCE = 50
LEAD_SENTENCES = 2  # a lead longer than this (a text without paragraphs) is cut to its first sentences
SHORT_LINE = 60  # a first line shorter than this, and no sentence, is not the lead on its own
_SENTENCE_MARKS = tuple(".!?…\"”»')")

# ----------------------------------------------------------------------------------------------
# Normalisation: the automaton sees a folded copy of the text; offsets map back to the original.

# Every character that is not a letter or a digit becomes a space, one for one, and the text is
# preceded by one: a needle " kyiv" can then only match at the start of a word (the left word
# boundary is free), and the automaton's root has a single transition, which keeps the scan fast.
_ASCII_FOLD = str.maketrans({chr(i): chr(i).lower() if chr(i).isalnum() else " " for i in range(128)})
_ASCII_PUNCT = tuple((c, " ") for c in map(chr, range(128)) if not c.isalnum() and c != " ")
# non-ASCII punctuation and spaces frequent in news text (they become spaces first: English text
# with curly quotes and dashes then takes the ASCII path)
_WIDE_PUNCT = tuple((c, " ") for c in "\u2019\u2018\u201c\u201d\u2014\u2013\u2026\u00a0\u00ab\u00bb\u201e\u201a\u02bc\u2032"
                    "\u00b4\u2010\u2011\u2012\u2015\u2022\u00b7\u00a9\u00ae\u2122\u20ac\u00a3\u00b0\u2009"
                    "\u200a\u202f\u2002\u2003\u00ad\u200b\u2116\u00a7\u00bf\u00a1\u2039\u203a")
_NOT_WORD = re.compile(r"[^\w ]|_")
# Cyrillic letters that look like Latin ones, folded (after case folding) so that a Latin "i"
# typed inside a Ukrainian word, or a Cyrillic "а" inside "Ukrаine", still matches; "ё" as "е".
_LOOKALIKES = tuple(zip("аеорсухіјѕё", "aeopcyxijse"))
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _replace_all(s: str, pairs: Iterable[tuple[str, str]]) -> str:
    """Replace one character at a time: str.replace beats str.translate on non-ASCII text."""
    for old, new in pairs:
        if old in s:
            s = s.replace(old, new)
    return s


def _spaced(folded: str) -> str:
    """Case-folded non-ASCII text with every non-letter, non-digit a space, look-alikes folded."""
    folded = _replace_all(folded, _ASCII_PUNCT)
    if not folded.replace(" ", "").isalnum():  # rarer punctuation left: the slower general way
        folded = _NOT_WORD.sub(" ", folded)
    return _replace_all(folded, _LOOKALIKES)


def _fold_cluster(cluster: str) -> str:
    return unicodedata.normalize("NFKC", cluster).lower()


class OffsetMap:
    """Positions in a folded text back to the original, where folding changed some lengths
    ("ß" became "ss", "ﬁ" "fi", an "e" with a combining accent "é")."""

    __slots__ = ("_spans", "_folded_starts")

    def __init__(self, spans: list[tuple[int, int, int, int]]):
        self._spans = spans  # (folded start, folded length, original start, original length)
        self._folded_starts = [s[0] for s in spans]

    def start(self, pos: int) -> int:
        i = bisect.bisect_right(self._folded_starts, pos) - 1
        if i < 0:
            return pos
        f_start, f_len, o_start, o_len = self._spans[i]
        return o_start if pos < f_start + f_len else o_start + o_len + pos - f_start - f_len

    def end(self, pos: int) -> int:
        i = bisect.bisect_right(self._folded_starts, pos - 1) - 1
        if i < 0:
            return pos
        f_start, f_len, o_start, o_len = self._spans[i]
        return o_start + o_len + max(0, pos - f_start - f_len)


def _fold_char(ch: str) -> str:
    """One character as every path folds it: NFKC, lower case, look-alikes; a space unless it is
    then one letter or digit."""
    folded = _replace_all(unicodedata.normalize("NFKC", ch).lower(), _LOOKALIKES)
    return folded if len(folded) == 1 and folded.isalnum() else " "


def _byte_table(codec: str) -> bytes:
    table = bytearray(range(256))
    for b in range(256):
        try:
            folded = _fold_char(bytes([b]).decode(codec)).encode(codec)
        except UnicodeError:  # undefined in the codec, or folded outside it
            folded = b" "
        table[b] = folded[0] if len(folded) == 1 else 32
    return bytes(table)


# Once its curly quotes and dashes are spaces, most text fits in one single-byte code page: Latin-1
# (Western European; the fastest to encode), Cyrillic or Central European. Encoded there, one
# bytes.translate folds the whole text, one for one, at C speed.
_CODE_PAGES = tuple((codec, _byte_table(codec)) for codec in ("latin-1", "cp1251", "cp1250"))
_SYMBOLS_AS_SPACES = "newsingest-tag-symbols"


def _symbols_as_spaces(exc: UnicodeEncodeError) -> tuple[str, int]:
    """Encoding error handler: symbols outside the code page (emoji, arrows, CJK punctuation)
    become spaces, one for one; a letter, digit or accent outside it rules the code page out."""
    if any(ch.isalnum() or unicodedata.combining(ch) for ch in exc.object[exc.start:exc.end]):
        raise exc
    return " " * (exc.end - exc.start), exc.end


codecs.register_error(_SYMBOLS_AS_SPACES, _symbols_as_spaces)


def normalize(text: str) -> tuple[str, Optional[OffsetMap]]:
    """``(folded, offset_map)``: a space, then the text as the automaton sees it (NFKC, lower case,
    every non-letter a space, Cyrillic look-alikes as Latin), and the map from positions in the text
    after that first space back to ``text`` (None when the two align one to one)."""
    if not text.isascii():
        text = _replace_all(text, _WIDE_PUNCT)
    if text.isascii():
        return " " + text.translate(_ASCII_FOLD), None
    for codec, table in _CODE_PAGES:
        try:
            return " " + text.encode(codec, _SYMBOLS_AS_SPACES).translate(table).decode(codec), None
        except UnicodeEncodeError:
            continue
    if unicodedata.is_normalized("NFKC", text):
        folded = text.lower()
        if len(folded) == len(text):  # lower case is per character: equal length means aligned
            return " " + _spaced(folded), None
    folded, offsets = _fold_runs(text)
    return " " + _spaced(folded), offsets


def _fold_runs(text: str, chunk: int = 32) -> tuple[str, Optional[OffsetMap]]:
    """NFKC and lower case, run by run of non-ASCII text and chunk by chunk of a run; cluster by
    cluster (a base and its combining marks) in the chunks where lengths change, recording them."""
    pieces: list[str] = []
    spans: list[tuple[int, int, int, int]] = []
    pos = folded_len = 0
    for m in _NON_ASCII_RUN.finditer(text):
        start, stop = m.span()
        if start > pos and unicodedata.combining(text[start]):
            start -= 1  # the accent belongs to the ASCII letter before it
        pieces.append(text[pos:start].lower())
        folded_len += start - pos
        i = start
        while i < stop:
            end = min(i + chunk, stop)
            while end < stop and unicodedata.combining(text[end]):
                end += 1  # never split a letter from its accents
            part = text[i:end]
            lowered = part.lower()
            if len(lowered) == len(part) and unicodedata.is_normalized("NFKC", part):
                pieces.append(lowered)
                folded_len += len(part)
                i = end
                continue
            while i < end:
                j = i + 1
                while j < end and unicodedata.combining(text[j]):
                    j += 1
                cluster = _fold_cluster(text[i:j])
                if len(cluster) != j - i:
                    spans.append((folded_len, len(cluster), i, j - i))
                pieces.append(cluster)
                folded_len += len(cluster)
                i = j
        pos = stop
    pieces.append(text[pos:].lower())
    return "".join(pieces), (OffsetMap(spans) if spans else None)


def needle_of(form: str) -> str:
    """How a term is looked up: folded like the text, one space before it (a word start)."""
    return " " + normalize(form)[0].strip()


def _case_key(s: str) -> str:
    """What an exact-case term is compared on: its letters and digits, case kept."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", s)).split())


# ----------------------------------------------------------------------------------------------
# Taxonomy: YAML in, one automaton out.

_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(form: str, sets: dict[str, list[str]], name: Optional[str] = None) -> Iterator[tuple[str, bool]]:
    """Expand ``{set}``, ``{a|b|}`` and ``{name}`` in a term; yield ``(form, exact_case)``.

    A leading ``=`` (on the term or on a set member) asks for the exact case."""
    exact = form.startswith("=")
    form = form[1:] if exact else form
    slots = _BRACES.findall(form)
    if not slots:
        yield form, exact
        return
    choices = []
    for slot in slots:
        if "|" in slot:
            choices.append(slot.split("|"))
        elif slot == "name" and name is not None:
            choices.append([name])
        elif slot in sets:
            choices.append(sets[slot])
        else:
            raise ValueError(f"taxonomy: unknown set {{{slot}}} in {form!r}")
    pieces = _BRACES.split(form)  # literal, slot, literal, slot, ..., literal
    for combo in itertools.product(*choices):
        out, combo_exact = [pieces[0]], exact
        for k, option in enumerate(combo):
            if option.startswith("="):
                option, combo_exact = option[1:], True
            out += [option, pieces[2 * k + 2]]
        yield "".join(out), combo_exact


def _is_plain(entry: "_Entry") -> bool:
    return entry.kind in (PRIMARY, SUPPORT, COUNTRY) and not entry.stem and entry.exact is None


@dataclasses.dataclass(frozen=True)
class _Entry:
    kind: int
    topic: int = -1  # index into Taxonomy.topic_ids, -1 for phrases that belong to no topic
    exact: Optional[frozenset] = None  # the forms the original text must show, for exact-case terms
    stem: bool = False  # the needle is a stem: the word may go on for up to max_suffix letters
    bans: tuple[str, ...] = ()  # CUE: the needles it switches off for the whole article


def _listed(value: Any) -> list[str]:
    """A term list, or a mapping of lists (entities by kind, forms by language), flattened."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [str(t) for v in value.values() for t in _listed(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _listed(v)]
    return [str(value)]


class Taxonomy:
    """A compiled taxonomy: one automaton over every term, exclusion, cue and country name."""

    def __init__(self, doc: dict[str, Any], digest: str = ""):
        doc = doc or {}
        declared = str(doc.get("version") or "unversioned")
        self.digest = digest
        self.declared_version = declared
        self.version = f"{declared}+{digest[:8]}" if digest else declared
        self.max_suffix = int(doc.get("stem_max_suffix", 4))
        sets = {k: _listed(v) for k, v in (doc.get("sets") or {}).items()}
        self.topic_ids: list[str] = []
        self.labels: dict[str, str] = {}
        entries: dict[str, list[_Entry]] = {}

        def add(raw: str, kind: int, topic: int = -1, name: Optional[str] = None, bans: tuple = ()):
            for form, exact in expand(raw.strip(), sets, name):
                stem = form.endswith("*")
                form = form.rstrip("*").strip()
                needle = needle_of(form)
                if not needle.strip():
                    continue
                entry = _Entry(kind, topic, frozenset([_case_key(form)]) if exact else None, stem, bans)
                bucket = entries.setdefault(needle, [])
                for i, other in enumerate(bucket):  # "=NATO" and "=Nato": one entry, two forms
                    if other.exact and entry.exact and other == dataclasses.replace(entry, exact=other.exact):
                        bucket[i] = dataclasses.replace(other, exact=other.exact | entry.exact)
                        break
                else:
                    if entry not in bucket:
                        bucket.append(entry)

        for idx, topic in enumerate(doc.get("topics") or []):
            tid = str(topic["id"])
            self.topic_ids.append(tid)
            self.labels[tid] = str(topic.get("label", tid))
            for key in ("aliases", "entities", "forms", "terms"):
                for raw in _listed(topic.get(key)):
                    add(raw, PRIMARY, idx)
            for raw in _listed(topic.get("cased")):
                add("=" + raw.lstrip("="), PRIMARY, idx)
            for raw in _listed(topic.get("support")):
                add(raw, SUPPORT, idx)
            for raw in _listed(topic.get("exclude")):
                add(raw, EXCLUDE)
            namesakes = topic.get("namesakes") or {}
            if isinstance(namesakes, list):
                namesakes = {n: [] for n in namesakes}
            for name, cues in namesakes.items():
                banned = tuple(needle_of(f.rstrip("*")).strip() for f, _ in expand(str(name), sets))
                for raw in list(_listed(doc.get("namesake_cues"))) + _listed(cues):
                    add(raw, CUE, name=str(name), bans=banned)
        for raw in sets.get("countries", []):  # proper names: a capital keeps "china" and "turkey" out
            add(raw.lstrip("="), COUNTRY)
        if not any(e.kind in (PRIMARY, SUPPORT) for bucket in entries.values() for e in bucket):
            raise ValueError("taxonomy has no terms")
        self.needle_count = len(entries)
        self.automaton = ahocorasick.Automaton()
        for needle, bucket in entries.items():
            # plain mentions and country names (whole word, no exact case) take a short path in the scan
            plain = tuple((e.topic, e.kind) for e in bucket if _is_plain(e))
            others = tuple(e for e in bucket if not _is_plain(e))
            self.automaton.add_word(needle, (len(needle), needle[1:], plain, others))
        self.automaton.make_automaton()

    @classmethod
    def from_yaml(cls, text: str) -> "Taxonomy":
        return _compile(text)


@functools.lru_cache(maxsize=16)
def _compile(text: str) -> Taxonomy:
    """Compiled once per distinct file content (the digest is part of the version)."""
    return Taxonomy(yaml.safe_load(text), hashlib.sha256(text.encode("utf-8")).hexdigest())


def default_taxonomy() -> Taxonomy:
    return _compile(resources.files("pipelines").joinpath("taxonomy.yaml").read_text("utf-8"))


def load_taxonomy(path: Optional[str] = None) -> Taxonomy:
    """The taxonomy in ``path`` (local or any Beam filesystem URL), or the bundled one."""
    if not path:
        return default_taxonomy()
    return _compile(_read(path).decode("utf-8"))


def _read(path: str) -> bytes:
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(path) as fh:
            return fh.read()
    with open(path, "rb") as fh:
        return fh.read()


def _stamp(path: str) -> tuple:
    """What changes when the file does: (modification time, size)."""
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems

        meta = FileSystems.match([path])[0].metadata_list[0]
        return meta.last_updated_in_seconds, meta.size_in_bytes
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


class TaxonomyWatcher:
    """The taxonomy as a slowly changing input of a long-running worker.

    ``current()`` returns the compiled taxonomy and, at most every ``interval_s`` seconds, looks at
    the file's modification time and size; when they changed it re-reads the file, and recompiles
    when its content hash changed. A file that fails to load keeps the previous taxonomy in force
    (logged, counted in ``errors``) until the next change; the first load fails loudly. Without a
    path the bundled taxonomy is used and never re-read.
    """

    def __init__(self, path: Optional[str] = None, interval_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.interval_s = interval_s
        self.reloads = 0
        self.errors = 0
        self._clock = clock
        self._checked = 0.0
        self._stamp: Optional[tuple] = None
        if path:  # the stamp first: an edit made while loading is seen at the next check
            self._stamp = _stamp(path)
            self._checked = clock()
        self._taxonomy = load_taxonomy(path)

    def current(self) -> Taxonomy:
        if self.path and self._clock() - self._checked >= self.interval_s:
            self._checked = self._clock()
            self._refresh()
        return self._taxonomy

    def _refresh(self) -> None:
        try:
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            taxonomy = load_taxonomy(self.path)
        except Exception as exc:  # a half-written or broken file must not stop the stream
            self.errors += 1
            log.warning("taxonomy %s not reloaded, keeping %s: %s", self.path, self._taxonomy.version, exc)
            return
        if taxonomy is not self._taxonomy:
            if taxonomy.declared_version == self._taxonomy.declared_version:
                log.warning("taxonomy %s changed without a new version (%s)", self.path, taxonomy.version)
            log.info("taxonomy %s reloaded: %s -> %s", self.path, self._taxonomy.version, taxonomy.version)
            self._taxonomy = taxonomy
            self.reloads += 1


# ----------------------------------------------------------------------------------------------
# Sentences: boundaries found in one regex pass; abbreviations and initials do not end one.

_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "Gen", "Col", "Lt", "Sgt", "Capt", "Cmdr", "Adm",
                  "Gov", "Sen", "Rep", "Pres", "Sr", "Jr", "St", "Mt", "Ft", "No", "vs", "etc", "Inc",
                  "Co", "Corp", "Ltd", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep",
                  "Sept", "Oct", "Nov", "Dec", "approx", "ca", "Nr", "bzw", "usw", "Hr", "Fr", "ul",
                  "gen", "płk", "tys", "mln", "mld", "ok", "tzw", "ген", "тыс", "млн", "млрд", "тис", "им")
_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆČĎĐĒĘĚĞĪĮİĹĽŁŃŇŌŐŒŔŘŚŞŠŢŤŪŮŰŲŹŻŽА-ЯЁЄІЇҐ"
# one lookbehind per abbreviation length (a lookbehind needs a fixed width)
_not_after_abbreviation = "".join(
    rf"(?<!\b(?:{'|'.join(sorted(a for a in _ABBREVIATIONS if len(a) == n))})\.)"
    for n in sorted({len(a) for a in _ABBREVIATIONS}))
_CLOSING = "[\"'”’»)\\]]*"
# one pattern per end mark, each starting with a literal so that the engine skips ahead fast
_SENTENCE_ENDS = (
    (".", re.compile(r"\." + _not_after_abbreviation + rf"(?<!\b[{_UPPER}]\.){_CLOSING}\s+"
                     rf"(?=[\"'“‘«(\[]*[0-9{_UPPER}])")),
    ("!", re.compile(rf"![!?]*{_CLOSING}\s+")),
    ("?", re.compile(rf"\?[!?]*{_CLOSING}\s+")),
    ("…", re.compile(rf"…{_CLOSING}\s+")),
)


def sentence_starts(text: str) -> list[int]:
    """Where each sentence of ``text`` starts (the first is 0)."""
    ends = [0]
    i = text.find("\n")
    while i >= 0:  # a paragraph break always ends a sentence
        i += 1
        while i < len(text) and text[i].isspace():
            i += 1
        ends.append(i)
        i = text.find("\n", i)
    for mark, pattern in _SENTENCE_ENDS:
        if mark in text:
            ends.extend(m.end() for m in pattern.finditer(text))
    return sorted(set(ends))


# ----------------------------------------------------------------------------------------------
# Matching.

_LIST_GAP = re.compile(
    r"\s*(?:[,;/&]|,?\s*(?:and|or|as well as|und|oder|sowie|et|ou|y|e|o|i|oraz|lub|albo|ani|"
    r"и|или|і|й|та|або|чи)\b)\s*(?:(?:the|die|der|la|le|les|el)\s+|l')?",
    re.IGNORECASE,
)


@dataclasses.dataclass
class _Scan:
    """What one pass of the automaton over one field found (offsets into the original field)."""
    mentions: list  # (start, -end, topic, kind, needle): sorted, the longest first at one start
    masks: list  # (start, end)
    countries: list  # (start, -end)
    bans: set


def _scan(taxonomy: Taxonomy, text: str) -> _Scan:
    folded, offsets = normalize(text)
    length = len(folded)
    max_suffix = taxonomy.max_suffix
    mentions, masks, countries, bans = [], [], [], set()
    for last, (size, word, plain, others) in taxonomy.automaton.iter(folded):
        end = last + 1
        start = end - size + 1  # the needle's first character is the space before the word
        closed = end == length or folded[end] == " "
        if closed and plain:
            if offsets is None:  # positions in the original text: one less for the leading space
                o_start, o_end = start - 1, end - 1
            else:
                o_start, o_end = offsets.start(start - 1), offsets.end(end - 1)
            for topic, kind in plain:
                if kind != COUNTRY:
                    mentions.append((o_start, -o_end, topic, kind, word))
                elif text[o_start].isupper():  # a country is a proper name: "Turkey", not "turkey"
                    countries.append((o_start, -o_end))
        for entry in others:
            stop = end
            if not closed:  # the word goes on: only a stem may take the rest of it
                if not entry.stem:
                    continue
                while stop < length and folded[stop] != " " and stop - end <= max_suffix:
                    stop += 1
                if stop - end > max_suffix:
                    continue
            if offsets is None:
                o_start, o_end, o_stem_end = start - 1, stop - 1, end - 1
            else:
                o_start, o_end, o_stem_end = offsets.start(start - 1), offsets.end(stop - 1), offsets.end(end - 1)
            if entry.exact is not None:
                seen = text[o_start:o_stem_end]
                if seen not in entry.exact and (seen.isalnum() or _case_key(seen) not in entry.exact):
                    continue
            kind = entry.kind
            if kind <= SUPPORT:
                mentions.append((o_start, -o_end, entry.topic, kind, word))
            elif kind == COUNTRY:
                countries.append((o_start, -o_end))
            else:
                masks.append((o_start, o_end))
                if kind == CUE:
                    bans.update(entry.bans)
    return _Scan(mentions, masks, countries, bans)


def _enumerated(text: str, countries: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of country names that stand in an enumeration of three or more countries."""
    if len(countries) < 3:
        return []
    longest = []
    for start, neg_end in sorted(set(countries)):  # "United States" inside "the United States" counts once
        if not longest or start >= longest[-1][1]:
            longest.append((start, -neg_end))
    listed, run = [], [longest[0]]
    for prev, cur in zip(longest, longest[1:]):
        if cur[0] - prev[1] <= 16 and _LIST_GAP.fullmatch(text, prev[1], cur[0]):
            run.append(cur)
            continue
        if len(run) >= 3:
            listed += run
        run = [cur]
    if len(run) >= 3:
        listed += run
    return listed


def _banned(needle: str, bans: set) -> bool:
    """A namesake ban on "moscow" also covers "moscow's" forms and longer names that hold it."""
    if needle in bans:
        return True
    if " " not in needle:
        return False
    padded = f" {needle} "
    return any(f" {b} " in padded for b in bans)


def _kept(scan: _Scan, text: str, bans: set) -> list[tuple[int, int, int, int, bool]]:
    """Mentions that survive masks and namesake bans, longest first among overlaps of one
    topic, each as ``(start, end, topic, kind, enumerated)``."""
    listed = dict(_enumerated(text, scan.countries))  # start -> end
    masks = sorted(scan.masks)
    mask_starts = [s for s, _ in masks]
    reach = list(itertools.accumulate((e for _, e in masks), max))  # furthest end of masks so far
    kept, last_end = [], {}
    scan.mentions.sort()
    for start, end, topic, kind, needle in scan.mentions:
        end = -end
        if bans and _banned(needle, bans):
            continue
        if masks:  # inside a mask: one that starts at or before it reaches its end
            i = bisect.bisect_right(mask_starts, start)
            if i and reach[i - 1] >= end:
                continue
        if start < last_end.get(topic, -1):
            continue
        last_end[topic] = end
        kept.append((start, end, topic, kind, listed.get(start, -1) >= end))
    return kept


CREDITS_TAIL = 600  # credits close a story: only its end is searched
_CREDIT_MARKERS = ("Reporting by", "reporting by", "Writing by", "Editing by", "Compiled by")


def credit_lines(text: str) -> list[tuple[int, int]]:
    """Spans of wire credits ("Reporting by Olena Harmash in Kyiv; Editing by ..."): where the
    reporters sat is not what the story is about."""
    spans = []
    tail = max(0, len(text) - CREDITS_TAIL)
    for marker in _CREDIT_MARKERS:
        i = text.find(marker, tail)
        while i >= 0:
            line_start = text.rfind("\n", 0, i) + 1
            before = text[line_start:i].strip()
            if text[i - 1:i] == "(" or before.lower() in ("(additional", "additional"):
                open_at = text.rfind("(", line_start, i)
                close = text.find(")", i)
                end = text.find("\n", i)
                end = len(text) if end < 0 else end
                spans.append((open_at if open_at >= 0 else line_start, close + 1 if 0 <= close < end else end))
            elif not before:
                end = text.find("\n", i)
                spans.append((line_start, len(text) if end < 0 else end))
            i = text.find(marker, i + 1)
    return spans


def _lead_end(text: str, lead: Optional[str], starts: list[int]) -> int:
    """Where the lead ends: the given lead or the first paragraph, at most LEAD_SENTENCES sentences;
    a short first line that is no sentence (a dateline, a byline, a kicker) takes the next one along."""
    skip = 0
    first = text.find("\n")
    if 0 <= first < SHORT_LINE and text[first:].strip() and not text[:first].rstrip().endswith(_SENTENCE_MARKS):
        skip = 1
        second = text.find("\n", first + 1)
        end = len(text) if second < 0 else second
    elif lead and text.startswith(lead):
        end = len(lead)
    else:
        end = len(text) if first < 0 else first
    if len(starts) > LEAD_SENTENCES + skip:
        end = min(end, starts[LEAD_SENTENCES + skip])
    return end


def tag_article(title: Optional[str], text: str, taxonomy: Optional[Taxonomy] = None,
                lead: Optional[str] = None) -> list[dict[str, Any]]:
    """Topics of one article, each ``{"id", "label", "score", "evidence"}``, best first.

    Evidence items are ``{"term", "offset", "sentence", "field"}``; ``offset`` indexes the title for
    field "title" and the text for "lead" and "text"."""
    taxonomy = taxonomy or default_taxonomy()
    title = title or ""
    text = text or ""
    title_scan, text_scan = _scan(taxonomy, title), _scan(taxonomy, text)
    if not title_scan.mentions and not text_scan.mentions:
        return []
    bans = title_scan.bans | text_scan.bans
    text_scan.masks.extend(credit_lines(text))
    in_title, in_text = _kept(title_scan, title, bans), _kept(text_scan, text, bans)
    anchored = {m[2] for m in in_title if m[3] == PRIMARY} | {m[2] for m in in_text if m[3] == PRIMARY}
    if not anchored:
        return []
    starts = sentence_starts(text) if in_text else [0]
    lead_end = _lead_end(text, lead, starts)
    # an enumerated mention ("exports to Egypt, Turkey and Ukraine") counts only in an article
    # that also speaks of the topic outside an enumeration
    spoken_of = {m[2] for m in in_title if not m[4]} | {m[2] for m in in_text if not m[4]}
    found: dict[int, list[tuple[str, int, int, int]]] = {}  # topic -> (field, start, end, sentence)
    for start, end, topic, kind, enumerated in in_title:
        if topic in anchored and topic in spoken_of:
            found.setdefault(topic, []).append(("title", start, end, 0))
    for start, end, topic, kind, enumerated in in_text:
        if topic in anchored and topic in spoken_of:
            found.setdefault(topic, []).append(("lead" if start < lead_end else "text", start, end,
                                                bisect.bisect_right(starts, start) - 1))
    topics = []
    for topic, mentions in found.items():
        fields = {m[0] for m in mentions}
        sentences = len({m[3] for m in mentions if m[0] != "title"})
        if not ("title" in fields or "lead" in fields or sentences >= 2):
            continue  # a passing mention
        weight = 1.0 * ("title" in fields) + 0.7 * ("lead" in fields) + 0.3 * sentences
        tid = taxonomy.topic_ids[topic]
        evidence = [{"term": (title if field == "title" else text)[start:end], "offset": start,
                     "sentence": sentence, "field": field}
                    for field, start, end, sentence in mentions[:MAX_EVIDENCE]]
        topics.append({"id": tid, "label": taxonomy.labels[tid], "score": round(1 - math.exp(-weight), 4),
                       "evidence": evidence})
    topics.sort(key=lambda t: (-t["score"], t["id"]))
    return topics


def tag_records(records: Iterable[dict], taxonomy: Optional[Taxonomy] = None) -> Iterator[dict]:
    """Add ``topics`` and ``taxonomy_version`` to each record (the ``newsingest tag`` path)."""
    taxonomy = taxonomy or default_taxonomy()
    for rec in records:
        rec = dict(rec)
        rec["topics"] = tag_article(rec.get("title"), rec.get("text") or "", taxonomy, rec.get("lead"))
        rec["taxonomy_version"] = taxonomy.version
        yield rec
