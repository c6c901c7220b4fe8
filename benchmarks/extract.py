"""Extraction quality and speed: the project against plain trafilatura, measured in one run.

Scores follow DESIGN.md ("Measuring quality"): tokens are ``\\w+`` runs; per page the multisets of
4-token shingles of output and gold are compared; corpus precision is the mean per-page precision
over pages with output, recall the mean over pages with gold, F1 their harmonic mean. Bag of words
is the same with single tokens. Speed is documents per second over the same pages, best of
``--repeat`` passes, every config timed in the same process.

Data sets (each a ``ground-truth.json`` of ``{id: {"articleBody": ..., "url": ...}}`` beside
``html/ID.html[.gz]``):
  aeb-dev   ../shared/data/extraction/aeb-dev when present, else benchmarks/data/extraction/aeb-dev
  seed      the five seed pages, gold = their story paragraphs (benchmarks/data/extraction/seed)
  styles    other templates and boilerplate wordings (tests/data/extraction/styles)

Run: ``python benchmarks/extract.py [--repeat N] [--sets aeb-dev,seed,styles]``.
Prints a table and ends with one JSON line of all figures.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trafilatura  # noqa: E402

from pipelines.extract import ExtractError, extract_article  # noqa: E402

_TOKEN = re.compile(r"\w+", re.U)


def _data_dir(name: str) -> Path:
    shared = REPO.parent / "shared" / "data" / "extraction" / name
    bundled = {"aeb-dev": REPO / "benchmarks" / "data" / "extraction" / "aeb-dev",
               "seed": REPO / "benchmarks" / "data" / "extraction" / "seed",
               "styles": REPO / "tests" / "data" / "extraction" / "styles"}[name]
    return shared if name == "aeb-dev" and (shared / "ground-truth.json").exists() else bundled


def load_set(name: str) -> list[tuple[str, str, Optional[str], str]]:
    """(id, html, url, gold text) of every page of one data set."""
    folder = _data_dir(name)
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id, item in sorted(truth.items()):
        gz, plain = folder / "html" / f"{page_id}.html.gz", folder / "html" / f"{page_id}.html"
        raw = gzip.decompress(gz.read_bytes()) if gz.exists() else plain.read_bytes()
        pages.append((page_id, raw.decode("utf-8", errors="replace"), item.get("url"), item["articleBody"]))
    return pages


def shingles(text: str, n: int) -> Counter:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def score(outputs: list[str], golds: list[str], n: int) -> dict[str, float]:
    """Corpus precision, recall and F1 over n-token shingle multisets (n=1: bag of words)."""
    precisions, recalls = [], []
    for out, gold in zip(outputs, golds):
        pred, ref = shingles(out, n), shingles(gold, n)
        tp = sum((pred & ref).values())
        if pred:
            precisions.append(tp / sum(pred.values()))
        if ref:
            recalls.append(tp / sum(ref.values()))
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _plain(**options) -> Callable[[str, Optional[str]], str]:
    def run(html: str, url: Optional[str]) -> str:
        return trafilatura.extract(html, url=url, **options) or ""
    return run


def _project(html: str, url: Optional[str]) -> str:
    try:
        return extract_article(html, url)["text"]
    except ExtractError:
        return ""


CONFIGS: dict[str, Callable[[str, Optional[str]], str]] = {
    "trafilatura default": _plain(),
    "trafilatura comments off": _plain(include_comments=False),
    "trafilatura precision, comments off": _plain(include_comments=False, favor_precision=True),
    "project": _project,
}


def run_config(fn, pages, repeat: int) -> tuple[list[str], float]:
    best, outputs = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        outputs = [fn(html, url) for _, html, url, _ in pages]
        best = min(best, time.perf_counter() - start)
    return outputs, len(pages) / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per config; the best counts")
    parser.add_argument("--sets", default="aeb-dev,seed,styles")
    parser.add_argument("--show", help="print per-page figures of this config name for the worst pages")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    for set_name in args.sets.split(","):
        pages = load_set(set_name)
        golds = [gold for *_, gold in pages]
        print(f"\n{set_name}: {len(pages)} pages")
        print(f"{'config':38} {'P':>6} {'R':>6} {'F1':>6} {'bowF1':>6} {'docs/s':>7}")
        figures = {}
        for name, fn in CONFIGS.items():
            outputs, speed = run_config(fn, pages, args.repeat)
            sh, bow = score(outputs, golds, 4), score(outputs, golds, 1)
            figures[name] = {"precision": round(sh["precision"], 4), "recall": round(sh["recall"], 4),
                             "f1": round(sh["f1"], 4), "bow_f1": round(bow["f1"], 4), "docs_per_s": round(speed, 1)}
            print(f"{name:38} {sh['precision']:6.3f} {sh['recall']:6.3f} {sh['f1']:6.3f} {bow['f1']:6.3f} {speed:7.1f}")
            if args.show == name:
                rows = []
                for (page_id, *_), out, gold in zip(pages, outputs, golds):
                    s = score([out], [gold], 4)
                    rows.append((s["f1"], s["precision"], s["recall"], page_id))
                for f1, p, r, page_id in sorted(rows)[:15]:
                    print(f"    {page_id[:16]} F1 {f1:.3f} P {p:.3f} R {r:.3f}")
        fastest_plain = max(v["docs_per_s"] for k, v in figures.items() if k != "project")
        figures["project_speed_vs_fastest_plain"] = round(figures["project"]["docs_per_s"] / fastest_plain, 3)
        print(f"project speed / fastest plain trafilatura config: {figures['project_speed_vs_fastest_plain']:.2f}x")
        results[set_name] = figures
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
