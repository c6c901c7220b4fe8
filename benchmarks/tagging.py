"""Tagging benchmark: quality on the hand-labelled dev set, speed on ~4 KB articles.

    python benchmarks/tagging.py [--labelled FILE]... [--rounds N]

Quality: per-topic precision and recall of `tag_article` against the labels of
tests/data/tagging/dev.yaml, of the 91 real news articles of the aeb-dev extraction benchmark
(../shared/data/extraction/aeb-dev, or the copy under benchmarks/data; labels in
tests/data/tagging/aeb-dev-labels.yaml) and of any other file given with
--labelled (same format as dev.yaml, or JSONL with `title`, `text`, `topics`), next to the baseline of
the same run: a "keyword hit" tagger that tags a
topic whenever any of its terms occurs anywhere, with the same automaton and no rule.

Speed: documents per CPU second (one core) of `tag_article` on ~4 KB articles, with the bundled
three-topic taxonomy (the baseline) and with the same taxonomy plus a generated 20,000-term one.
Two corpora: real news articles (the aeb-dev gold texts) cut into ~4 KB documents, and topic-dense
documents made of dev-set passages, one language a document.

The last line printed is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipelines.tag import Taxonomy, _scan, default_taxonomy, tag_article  # noqa: E402

DEV_SET = REPO / "tests" / "data" / "tagging" / "dev.yaml"
NEWS_LABELS = REPO / "tests" / "data" / "tagging" / "aeb-dev-labels.yaml"
# the real news articles: ../shared/data when present, else the copy the extraction benchmark bundles
NEWS = next((p for p in (REPO.parent / "shared" / "data" / "extraction" / "aeb-dev" / "ground-truth.json",
                         REPO / "benchmarks" / "data" / "extraction" / "aeb-dev" / "ground-truth.json")
             if p.exists()), None)
DOC_CHARS = 4096
GENERATED_TERMS = 20_000


def load_labelled(path: Path) -> list[dict[str, Any]]:
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(path.read_text(encoding="utf-8"))["articles"]
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_news_labelled() -> list[dict[str, Any]]:
    """The real articles of ../shared/data (when present) with their hand labels."""
    texts = json.loads(NEWS.read_text(encoding="utf-8"))
    labels = yaml.safe_load(NEWS_LABELS.read_text(encoding="utf-8"))["labels"]
    return [{"id": item["id"][:8], "title": "", "text": texts[item["id"]]["articleBody"], "topics": item["topics"]}
            for item in labels if item["id"] in texts]


def keyword_hits(title: str, text: str, taxonomy: Taxonomy) -> set[str]:
    """The baseline: any term of a topic, anywhere, tags it."""
    topics = {m[2] for field in (title, text) for m in _scan(taxonomy, field).mentions}
    return {taxonomy.topic_ids[t] for t in topics}


def precision_recall(articles: list[dict], predict) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    for art in articles:
        gold, got = set(art.get("topics") or []), predict(art)
        for tid in gold | got:
            c = counts.setdefault(tid, {"tp": 0, "fp": 0, "fn": 0, "fp_ids": [], "fn_ids": []})
            if tid in gold and tid in got:
                c["tp"] += 1
            elif tid in got:
                c["fp"] += 1
                c["fp_ids"].append(art.get("id"))
            else:
                c["fn"] += 1
                c["fn_ids"].append(art.get("id"))
    for c in counts.values():
        c["precision"] = round(c["tp"] / (c["tp"] + c["fp"]), 4) if c["tp"] + c["fp"] else 1.0
        c["recall"] = round(c["tp"] / (c["tp"] + c["fn"]), 4) if c["tp"] + c["fn"] else 1.0
    return counts


def quality(articles: list[dict], taxonomy: Taxonomy) -> dict[str, Any]:
    ours = precision_recall(articles, lambda a: {t["id"] for t in tag_article(a.get("title"), a["text"], taxonomy)})
    base = precision_recall(articles, lambda a: keyword_hits(a.get("title") or "", a["text"], taxonomy))
    return {"n": len(articles), "rule": ours, "baseline_keyword": base}


# --- speed ----------------------------------------------------------------------------------------

def _cut(texts: Iterable[str], size: int = DOC_CHARS) -> list[str]:
    """Documents of about ``size`` characters: articles joined, cut at a paragraph break."""
    docs, buf = [], ""
    for text in texts:
        buf += text.strip() + "\n"
        while len(buf) >= size:
            cut = buf.rfind("\n", 0, size)
            cut = size if cut < size // 2 else cut
            docs.append(buf[:cut])
            buf = buf[cut:].lstrip("\n")
    return docs


def news_articles(dev: list[dict]) -> list[str]:
    if NEWS:
        return [v["articleBody"] for v in json.loads(NEWS.read_text(encoding="utf-8")).values()]
    return [a["text"] for a in dev]


def corpora(dev: list[dict]) -> dict[str, list[str]]:
    news = news_articles(dev)
    rng = random.Random(7)
    dense = []
    for lang in sorted({a.get("lang", "en") for a in dev}):  # one language a document, as in a feed
        same = [a["text"] for a in dev if a.get("lang", "en") == lang]
        rounds = max(1, round(4 * DOC_CHARS * 4 / sum(map(len, same))))  # ~4+ documents a language
        for _ in range(rounds):
            rng.shuffle(same)
        dense += _cut([t for _ in range(rounds) for t in rng.sample(same, len(same))])
    return {"news": _cut(news), "dense": dense}


def generated_taxonomy(base_doc: dict, corpus: list[str], reference: list[str],
                       n_terms: int = GENERATED_TERMS) -> dict:
    """The bundled taxonomy plus ``n_terms`` generated terms in topics of 20, shaped like a large
    entity dictionary: names of two capitalised words and rare words (in at most two documents)
    taken from ``corpus`` (another corpus than the one timed, as a dictionary is written apart from
    the news it tags; rare among all the ``reference`` articles), synthetic Latin names, Cyrillic
    stems and exact-case acronyms."""
    rng = random.Random(20_000)
    doc_freq: dict[str, int] = {}
    for doc in reference:
        for w in set(re.findall(r"[^\W\d_]{4,}", doc.lower())):
            doc_freq[w] = doc_freq.get(w, 0) + 1
    rare = sorted({w for doc in corpus for w in re.findall(r"[^\W\d_]{4,}", doc.lower()) if doc_freq.get(w, 0) <= 2})
    names = sorted({m.group(0) for doc in corpus for m in re.finditer(r"\b[A-Z][a-z]{2,} [A-Z][a-z]{2,}\b", doc)
                    if m.group(0).split()[0] not in SENTENCE_OPENERS})
    syllables = ["ka", "lo", "mi", "ran", "tev", "os", "ul", "bra", "zen", "dor", "vik", "sha", "nov", "ter"]
    cyrillic = ["ко", "ла", "ми", "рен", "тов", "ос", "ул", "бра", "зен", "дор", "вик", "ша", "нов", "тер"]
    terms: set[str] = set()
    while len(terms) < n_terms:
        kind = rng.random()
        if kind < 0.20 and rare:
            term = rng.choice(rare)
        elif kind < 0.50 and names:
            term = rng.choice(names)
        elif kind < 0.85:
            term = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize()
            term += rng.choice(["", "", " " + "".join(rng.choice(syllables) for _ in range(3)).capitalize()])
        elif kind < 0.95:
            term = "".join(rng.choice(cyrillic) for _ in range(rng.randint(2, 3))).capitalize() + "*"
        else:
            term = "=" + "".join(rng.choice("BCDFGHJKLMNPRSTVWXZ") for _ in range(rng.randint(3, 4)))
        terms.add(term)
    ordered = sorted(terms)
    rng.shuffle(ordered)
    topics = [{"id": f"gen{i // 20:04d}", "label": f"Generated {i // 20}", "terms": ordered[i:i + 20]}
              for i in range(0, len(ordered), 20)]
    return {**base_doc, "version": "generated-20k", "topics": list(base_doc["topics"]) + topics}


SENTENCE_OPENERS = {"The", "But", "And", "For", "His", "Her", "Its", "This", "That", "They", "She", "When",
                    "After", "While", "Some", "Most", "Many", "Other", "Our", "Their", "There", "Then", "With",
                    "From", "Under", "About", "Also", "Since", "Now", "Last", "Next", "Every", "Any", "All"}


def mentions_per_doc(docs: list[str], taxonomy: Taxonomy) -> float:
    return round(sum(len(_scan(taxonomy, d).mentions) for d in docs) / len(docs), 1)


def docs_per_second(docs: list[str], taxonomy: Taxonomy, rounds: int) -> float:
    """Best of ``rounds`` passes, in documents per CPU second (one core)."""
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for doc in docs:
            tag_article("", doc, taxonomy)
        elapsed = time.process_time() - start
        best = max(best, len(docs) / elapsed)
    return best


def speed(dev: list[dict], rounds: int) -> dict[str, Any]:
    base = default_taxonomy()
    base_doc = yaml.safe_load((REPO / "pipelines" / "taxonomy.yaml").read_text(encoding="utf-8"))
    docs = corpora(dev)
    # each corpus is timed with terms drawn from the articles of the other one
    passages, articles = [a["text"] for a in dev], news_articles(dev)
    big = {"news": Taxonomy(generated_taxonomy(base_doc, passages, passages + articles)),
           "dense": Taxonomy(generated_taxonomy(base_doc, articles, passages + articles))}
    out: dict[str, Any] = {"doc_chars": DOC_CHARS, "base_needles": base.needle_count,
                           "generated_needles": max(t.needle_count for t in big.values())}
    for name, corpus in docs.items():
        three = docs_per_second(corpus, base, rounds)
        twenty = docs_per_second(corpus, big[name], rounds)
        out[name] = {"docs": len(corpus), "mean_chars": round(sum(map(len, corpus)) / len(corpus)),
                     "docs_per_s_3topics": round(three), "docs_per_s_20k_terms": round(twenty),
                     "slowdown_20k": round(three / twenty, 2),
                     "mentions_per_doc_3topics": mentions_per_doc(corpus, base),
                     "mentions_per_doc_20k_terms": mentions_per_doc(corpus, big[name])}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labelled", action="append", default=[], help="more labelled articles (YAML like dev.yaml, or JSONL)")
    ap.add_argument("--rounds", type=int, default=7, help="timing passes; the best counts")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args(argv)

    taxonomy = default_taxonomy()
    dev = load_labelled(DEV_SET)
    report: dict[str, Any] = {"taxonomy_version": taxonomy.version, "quality": {"dev": quality(dev, taxonomy)}}
    if NEWS:
        report["quality"]["aeb_news"] = quality(load_news_labelled(), taxonomy)
    for path in args.labelled:
        report["quality"][Path(path).stem] = quality(load_labelled(Path(path)), taxonomy)

    for name, q in report["quality"].items():
        print(f"\n{name}: {q['n']} articles, per-topic precision / recall (keyword-hit baseline in brackets)")
        for tid in sorted(q["rule"]):
            r, b = q["rule"][tid], q["baseline_keyword"].get(tid, {})
            print(f"  {tid:8s} P {r['precision']:.3f} ({b.get('precision', 0):.3f})   R {r['recall']:.3f} "
                  f"({b.get('recall', 0):.3f})   tp {r['tp']} fp {r['fp']} fn {r['fn']}")
            for kind in ("fp_ids", "fn_ids"):
                if r[kind]:
                    print(f"           {kind[:2]}: {', '.join(map(str, r[kind]))}")

    if not args.no_speed:
        report["speed"] = speed(dev, args.rounds)
        s = report["speed"]
        print(f"\nspeed, documents per CPU second on ~{DOC_CHARS}-char documents "
              f"({s['base_needles']} needles bundled, {s['generated_needles']} with the generated terms):")
        for name in ("news", "dense"):
            r = s[name]
            print(f"  {name:6s} ({r['docs']} docs, mean {r['mean_chars']} chars): 3 topics {r['docs_per_s_3topics']:>7,}/s"
                  f" ({r['mentions_per_doc_3topics']} mentions/doc)   +20k terms {r['docs_per_s_20k_terms']:>7,}/s"
                  f" ({r['mentions_per_doc_20k_terms']} mentions/doc)   slowdown x{r['slowdown_20k']}")

    for q in report["quality"].values():
        for side in ("rule", "baseline_keyword"):
            for c in q[side].values():
                c.pop("fp_ids", None)
                c.pop("fn_ids", None)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
