"""Extraction quality and speed: the project against plain trafilatura, measured in one run.

Scores follow DESIGN.md ("Measuring quality"): tokens are ``\\w+`` runs; per page the multisets of
4-token shingles of output and gold are compared; corpus precision is the mean per-page precision
over pages with output, recall the mean over pages with gold, F1 their harmonic mean. Bag of words
is the same with single tokens. Speed is documents per second over the same pages, every config
timed in the same process, page by page in turn, the fastest of ``--repeat`` runs counting.

Data sets (each a ``ground-truth.json`` of ``{id: {"articleBody": ..., "url": ...}}`` beside
``html/ID.html[.gz]``):
  aeb-dev   ../shared/data/extraction/aeb-dev when present, else benchmarks/data/extraction/aeb-dev
  seed      the five seed pages (../shared/data/seed/pages, else tests/data/seed), gold = their story
            paragraphs and subheading (tests/data/extraction/seed)
  styles    24 pages: real article text in four other templates with other wordings of the
            boilerplate (tests/data/extraction/styles, built by build_styles.py there)
  DIR       any folder of that layout, e.g. a checkout of the article-extraction-benchmark
Seed and styles gold also lists the junk lines of each page; "junk left" counts the survivors.

Run: ``python benchmarks/extract.py [--repeat N] [--sets aeb-dev,seed,styles,DIR]``.
Prints a table and ends with one JSON line of all figures.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
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


SHARED = REPO.parent / "shared" / "data"
TESTS = REPO / "tests" / "data"


def _folders(name: str) -> tuple[Path, Path]:
    """(folder of ground-truth.json, folder of the pages) of one data set; ../shared first."""
    if name == "aeb-dev":
        shared = SHARED / "extraction" / "aeb-dev"
        folder = shared if (shared / "ground-truth.json").exists() else REPO / "benchmarks" / "data" / "extraction" / "aeb-dev"
        return folder, folder / "html"
    if name == "seed":
        pages = SHARED / "seed" / "pages"
        return TESTS / "extraction" / "seed", pages if pages.is_dir() else TESTS / "seed"
    if Path(name).is_dir():  # any folder of the same layout, e.g. the full article-extraction-benchmark
        return Path(name), Path(name) / "html"
    return TESTS / "extraction" / name, TESTS / "extraction" / name / "html"


def load_set(name: str) -> list[tuple[str, str, Optional[str], str]]:
    """(id, html, url, gold text) of every page of one data set."""
    return [(page_id, html, item.get("url"), item["articleBody"]) for page_id, html, item in load_items(name)]


def load_items(name: str) -> list[tuple[str, str, dict]]:
    """(id, html, gold item) of every page of one data set; seed and styles items also list junk."""
    truth_dir, html_dir = _folders(name)
    truth = json.loads((truth_dir / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id, item in sorted(truth.items()):
        gz, plain = html_dir / f"{page_id}.html.gz", html_dir / f"{page_id}.html"
        raw = gzip.decompress(gz.read_bytes()) if gz.exists() else plain.read_bytes()
        pages.append((page_id, raw.decode("utf-8", errors="replace"), item))
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


def run_configs(pages, repeat: int) -> dict[str, tuple[list[str], float]]:
    """Outputs and documents per second of every config.

    Each page is run by every config in turn, ``repeat`` times, and the fastest run of each
    (config, page) counts: the machine is shared, and interleaving at page level keeps a burst
    of load from landing on one config only.
    """
    outputs: dict[str, list[str]] = {name: [] for name in CONFIGS}
    seconds = dict.fromkeys(CONFIGS, 0.0)
    for _, html, url, _ in pages:
        best = dict.fromkeys(CONFIGS, float("inf"))
        last: dict[str, str] = {}
        for _ in range(repeat):
            for name, fn in CONFIGS.items():
                start = time.perf_counter()
                last[name] = fn(html, url)
                best[name] = min(best[name], time.perf_counter() - start)
        for name in CONFIGS:
            outputs[name].append(last[name])
            seconds[name] += best[name]
    return {name: (outputs[name], len(pages) / seconds[name]) for name in CONFIGS}


def junk_left(outputs: list[str], items: list[dict]) -> tuple[int, int]:
    """How many of the pages' known junk lines survive in the outputs, out of how many.

    Only output lines that are not story lines count: a story sentence may contain a junk word
    ("Advertisement revenue fell..."), and that is the point of the trap paragraphs.
    """
    left = total = 0
    for out, item in zip(outputs, items):
        story = {" ".join(line.split()) for line in item["articleBody"].split("\n")}
        rest = "\n".join(line for line in out.split("\n") if " ".join(line.split()) not in story)
        for junk in item.get("junk", []):
            total += 1
            left += junk in rest
    return left, total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page and config; the fastest counts")
    parser.add_argument("--sets", default="aeb-dev,seed,styles")
    parser.add_argument("--show", help="print per-page figures of this config name for the worst pages")
    args = parser.parse_args(argv)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # its "discarding data" lines are not figures
    results: dict[str, dict] = {}
    for set_name in args.sets.split(","):
        items = load_items(set_name)
        pages = [(page_id, html, item.get("url"), item["articleBody"]) for page_id, html, item in items]
        golds = [gold for *_, gold in pages]
        print(f"\n{set_name}: {len(pages)} pages")
        print(f"{'config':38} {'P':>6} {'R':>6} {'F1':>6} {'bowF1':>6} {'docs/s':>7} {'junk left':>10}")
        figures = {}
        for name, (outputs, speed) in run_configs(pages, args.repeat).items():
            sh, bow = score(outputs, golds, 4), score(outputs, golds, 1)
            left, total = junk_left(outputs, [item for *_, item in items])
            figures[name] = {"precision": round(sh["precision"], 4), "recall": round(sh["recall"], 4),
                             "f1": round(sh["f1"], 4), "bow_f1": round(bow["f1"], 4), "docs_per_s": round(speed, 1)}
            if total:
                figures[name]["junk_left"] = f"{left}/{total}"
            junk = f"{left}/{total}" if total else "-"
            print(f"{name:38} {sh['precision']:6.3f} {sh['recall']:6.3f} {sh['f1']:6.3f} {bow['f1']:6.3f} {speed:7.1f} {junk:>10}")
            if args.show == name:
                rows = []
                for (page_id, *_), out, gold in zip(pages, outputs, golds):
                    s = score([out], [gold], 4)
                    rows.append((s["f1"], s["precision"], s["recall"], page_id))
                for f1, p, r, page_id in sorted(rows)[:15]:
                    print(f"    {page_id[:16]} F1 {f1:.3f} P {p:.3f} R {r:.3f}")
        fastest_plain = max(v["docs_per_s"] for k, v in figures.items() if k != "project")
        same = figures["trafilatura precision, comments off"]["docs_per_s"]
        figures["project_speed_vs_same_settings"] = round(figures["project"]["docs_per_s"] / same, 3)
        figures["project_speed_vs_fastest_plain"] = round(figures["project"]["docs_per_s"] / fastest_plain, 3)
        print(f"project speed / plain trafilatura with the same settings: {figures['project_speed_vs_same_settings']:.2f}x,"
              f" / fastest plain config: {figures['project_speed_vs_fastest_plain']:.2f}x")
        results[set_name] = figures
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
