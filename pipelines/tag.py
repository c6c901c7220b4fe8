"""Topic tagging with evidence.

A topic applies when it is a *substantive subject* of the article (DESIGN.md): one of its terms
appears in the title or the lead, or in at least two separate sentences of the body. One passing
mention is not a tag. All terms of all topics are matched in one pass of an Aho-Corasick automaton
over the lower-cased text, with word-boundary checks; exclusion phrases mask the mentions they
cover ("Odessa, Texas"); support terms ("the alliance") count only in articles that name the topic.
Each topic carries its score and the evidence (term, offset, sentence, field).
"""
from __future__ import annotations

import bisect
import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Optional

import ahocorasick
import yaml

PRIMARY, SUPPORT, EXCLUDE = "primary", "support", "exclude"
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»)]*\s+|\n+")


@dataclass(frozen=True)
class _Term:
    topic: str
    kind: str
    form: str  # as written in the taxonomy
    cased: bool


class Taxonomy:
    """A compiled taxonomy: one automaton over every term and exclusion phrase."""

    def __init__(self, doc: dict[str, Any]):
        self.version = str(doc.get("version", "unversioned"))
        self.labels: dict[str, str] = {}
        self.automaton = ahocorasick.Automaton()
        entries: dict[str, list[_Term]] = {}
        for topic in doc.get("topics") or []:
            tid = topic["id"]
            self.labels[tid] = topic.get("label", tid)
            for kind, key, cased in ((PRIMARY, "terms", False), (PRIMARY, "cased", True),
                                     (SUPPORT, "support", False), (EXCLUDE, "exclude", False)):
                for form in topic.get(key) or []:
                    form = str(form).strip()
                    if form:
                        entries.setdefault(form.lower(), []).append(_Term(tid, kind, form, cased))
        if not entries:
            raise ValueError("taxonomy has no terms")
        for needle, terms in entries.items():
            self.automaton.add_word(needle, (needle, tuple(terms)))
        self.automaton.make_automaton()

    @classmethod
    def from_yaml(cls, text: str) -> "Taxonomy":
        return cls(yaml.safe_load(text))


@functools.cache
def default_taxonomy() -> Taxonomy:
    return Taxonomy.from_yaml(resources.files("pipelines").joinpath("taxonomy.yaml").read_text("utf-8"))


@functools.lru_cache(maxsize=8)
def load_taxonomy(path: Optional[str] = None) -> Taxonomy:
    if not path:
        return default_taxonomy()
    with open(path, encoding="utf-8") as fh:
        return Taxonomy.from_yaml(fh.read())


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _mentions(taxonomy: Taxonomy, text: str) -> list[tuple[int, int, _Term]]:
    """(start, end, term) for every boundary-respecting match, exclusion spans applied."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters change length when lower-cased
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    found: list[tuple[int, int, _Term]] = []
    masks: list[tuple[int, int]] = []
    for end_idx, (needle, terms) in taxonomy.automaton.iter(lowered):
        start = end_idx - len(needle) + 1
        end = end_idx + 1
        if (start > 0 and _is_word_char(lowered[start - 1])) or (end < len(lowered) and _is_word_char(lowered[end])):
            if not needle[-1:].isalnum() or not needle[:1].isalnum():
                pass  # a term that starts or ends with punctuation carries its own boundary
            else:
                continue
        for term in terms:
            if term.kind == EXCLUDE:
                masks.append((start, end))
            elif not term.cased or text[start:end] == term.form:
                found.append((start, end, term))
    if masks:
        found = [m for m in found if not any(s <= m[0] and m[1] <= e for s, e in masks)]
    # keep the longest of overlapping mentions of one topic ("Vladimir Putin" over "Putin")
    found.sort(key=lambda m: (m[0], -(m[1] - m[0])))
    kept: list[tuple[int, int, _Term]] = []
    last_end: dict[str, int] = {}
    for m in found:
        if m[0] >= last_end.get(m[2].topic, -1):
            kept.append(m)
            last_end[m[2].topic] = m[1]
    return kept


def _sentence_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _SENTENCE_END.finditer(text)]


def tag_article(title: Optional[str], text: str, taxonomy: Optional[Taxonomy] = None,
                lead: Optional[str] = None) -> list[dict[str, Any]]:
    """Topics of one article, each ``{"id", "label", "score", "evidence"}``, best first."""
    taxonomy = taxonomy or default_taxonomy()
    title = title or ""
    text = text or ""
    lead_end = len(lead) if lead and text.startswith(lead) else (text.find("\n") if "\n" in text else len(text))
    starts = _sentence_starts(text)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    anchored: set[str] = set()
    for field_name, body in (("title", title), ("text", text)):
        for start, end, term in _mentions(taxonomy, body):
            if field_name == "text":
                sentence = bisect.bisect_right(starts, start) - 1
                where = "lead" if start < lead_end else "text"
            else:
                sentence, where = 0, "title"
            if term.kind == PRIMARY:
                anchored.add(term.topic)
            by_topic.setdefault(term.topic, []).append(
                {"term": body[start:end], "offset": start, "sentence": sentence, "field": where, "_kind": term.kind}
            )
    topics = []
    for tid, evidence in by_topic.items():
        if tid not in anchored:
            continue
        in_title = any(e["field"] == "title" for e in evidence)
        in_lead = any(e["field"] == "lead" for e in evidence)
        body_sentences = {e["sentence"] for e in evidence if e["field"] != "title"}
        if not (in_title or in_lead or len(body_sentences) >= 2):
            continue
        weight = 1.2 * in_title + 0.8 * in_lead + 0.35 * len(body_sentences)
        score = round(1 - math.exp(-weight), 4)
        for e in evidence:
            del e["_kind"]
        topics.append({"id": tid, "label": taxonomy.labels[tid], "score": score, "evidence": evidence[:50]})
    topics.sort(key=lambda t: (-t["score"], t["id"]))
    return topics


def tag_records(records: Iterable[dict], taxonomy: Optional[Taxonomy] = None) -> Iterable[dict]:
    """Add ``topics`` and ``taxonomy_version`` to each record (the ``newsingest tag`` path)."""
    taxonomy = taxonomy or default_taxonomy()
    for rec in records:
        rec = dict(rec)
        rec["topics"] = tag_article(rec.get("title"), rec.get("text", ""), taxonomy, rec.get("lead"))
        rec["taxonomy_version"] = taxonomy.version
        yield rec
