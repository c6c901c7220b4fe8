"""Build the "styles" pages: real article text in site templates the rules were not written on.

Each page wraps the paragraphs of one real article (from the aeb-dev gold, MIT, and the seed
story) in one of four templates: utility-class markup (Tailwind-like, no meaningful class
names), no classes at all, semantic markup with other class names than WordPress's, and an
old table layout with <br> paragraphs. Into the story container go the boilerplate kinds the
issue lists, each worded differently from the seed (caption with credit, credit line, tag list,
embed marker, widget, tracker, related link, call to action, copyright), and "trap" paragraphs:
real sentences that merely contain words like photo, Reuters, tags, related, follow, subscribe.

The gold (``ground-truth.json``) holds, per page, the story text (articleBody: paragraphs, the
subheading and the trap paragraphs), the junk lines that must not survive, and the tags the page
lists. Run ``python tests/data/extraction/build_styles.py`` to rebuild; the output is committed.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
AEB = REPO / "benchmarks" / "data" / "extraction" / "aeb-dev" / "ground-truth.json"
OUT = HERE / "styles"

ARTICLES = {  # aeb-dev page id prefix -> (title, subheading inserted after paragraph 4, tags)
    "833c": ("World lashes out at US over settlements decision", "Palestinian reaction", ["Israel", "Palestine", "United States"]),
    "8b19": ("Hunter catches bubonic plague after eating wild rabbit", "How the disease spreads", ["China", "Health", "Plague"]),
    "c907": ("Trump claims victory as House debates impeachment", "What the witnesses said", ["Impeachment", "Donald Trump", "Ukraine"]),
    "db6b": ("Esper says US providing Vietnam with coast guard ship", "Visit to Hanoi", ["Vietnam", "China", "Defense"]),
    "e799": ("Conservatives accused of deceiving voters with fact-check account", "Labour's response", ["Elections", "UK", "Twitter"]),
}

TRAPS = [
    "The photo, first published by Reuters on Monday, showed the damaged building from the air.",
    "Officials said the delays were related to staffing shortages at the border crossing, Reuters reported.",
    "Investigators said the suspects had removed the tags from the stolen equipment before selling it online.",
    "Readers who follow the case closely will remember that the first hearing was postponed in March.",
    "Advertisement revenue at the group fell by 12% last year, the company said in its annual report.",
    "Those who subscribe to the theory argue that the credit squeeze began long before the crisis.",
]

# (kind, text) per wording; each page takes one of each kind, rotating through the list
CAPTIONS = [
    "Firefighters work at the scene of the blast on Monday. (Photo: Jane Doe/AFP via Getty Images)",
    "The minister arrives for talks in Brussels, Belgium. REUTERS/Yves Herman",
    "Demonstrators gather outside parliament on Tuesday evening. Photograph: Tom Jenkins/The Guardian",
    "A police officer stands guard near the embassy (AP Photo/Evan Vucci)",
    "Supporters wave flags during the rally in the capital. Picture: PA Images",
]
CREDITS = ["Image: Reuters", "Photo credit: Getty Images", "Credit: Maria Lopez/EPA-EFE", "Photo: AFP", "Pic: Alamy"]
EMBEDS = ["@Twitter", "View this post on Instagram", "pic.twitter.com/AbC123xYz", "@YouTube", "A post shared by The Ledger (@theledger)"]
TRACKERS = ["Web Analytics", "Real Time Analytics", "ADVERTISEMENT", "Story continues below advertisement", "Advertisement"]
RELATED = ["Related: Leaders meet for emergency summit in Brussels", "READ MORE: Markets slide as talks stall",
           "See also: What the new rules mean for travellers", "Read more: Five things to know about the vote",
           "RELATED: Court date set in fraud case"]
CTAS = ["Follow us on Twitter and Facebook for the latest updates.", "Sign up for our daily briefing newsletter.",
        "Subscribe to our newsletter to get the top stories in your inbox.", "Click here to download our app.",
        "Have a tip? Email us at tips@example-news.com."]
COPYRIGHTS = ["Copyright © 2024 Example Media. All rights reserved.", "© 2023 The Daily Ledger", "All rights reserved.",
              "(c) 2024 Northern Post Ltd", "Copyright 2022 Wire Service Inc."]
TAG_LABELS = ["Tags:", "Topics:", "Filed under:", "Tagged:", "Keywords:"]


def _paragraphs(body: str, limit: int = 10) -> list[str]:
    paras = [p.strip() for p in body.split("\n") if p.strip() and not re.fullmatch(r"[_\W]+", p.strip())]
    return paras[:limit]


def _seed_story() -> tuple[str, list[str], str, list[str]]:
    page = (REPO / "tests" / "data" / "seed" / "wp__bare_p.html").read_text(encoding="utf-8")
    content = page.split('<div class="entry-content">', 1)[1].split('<div class="video-embed">', 1)[0]
    paras = [html.unescape(re.sub(r"<[^>]+>", "", p)).strip() for p in re.findall(r"<(?:p|h2)>(.*?)</(?:p|h2)>", content)]
    paras = [p for p in paras if p and "(Photo by" not in p]
    sub = next(p for p in paras if len(p.split()) < 10)
    paras.remove(sub)
    return "Zelensky admits Ukraine may never join NATO", paras, sub, ["Ukraine", "NATO", "Russia"]


def _articles() -> list[tuple[str, list[str], str, list[str]]]:
    gold = json.loads(AEB.read_text(encoding="utf-8"))
    out = []
    for prefix, (title, sub, tags) in ARTICLES.items():
        body = next(v["articleBody"] for k, v in gold.items() if k.startswith(prefix))
        out.append((title, _paragraphs(body), sub, tags))
    out.append(_seed_story())
    return out


def _junk(i: int) -> dict[str, str]:
    pick = lambda items: items[i % len(items)]  # noqa: E731
    return {"caption": pick(CAPTIONS), "credit": pick(CREDITS[1:] if i % 2 else CREDITS), "embed": pick(EMBEDS),
            "tracker": pick(TRACKERS), "related": pick(RELATED), "cta": pick(CTAS), "copyright": pick(COPYRIGHTS),
            "tag_label": pick(TAG_LABELS)}


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def utility(title, paras, sub, tags, junk, traps) -> str:
    """Tailwind-like utility classes: no class name says what a block is."""
    p = lambda t: f'<p class="mt-4 text-lg leading-7 text-gray-900">{_e(t)}</p>'  # noqa: E731
    small = lambda t: f'<p class="mt-2 text-sm text-gray-500">{_e(t)}</p>'  # noqa: E731
    body = [p(paras[0]), '<div class="my-6"><img class="w-full rounded" src="/img/a.jpg" alt="">',
            small(junk["caption"]) + "</div>", p(paras[1]), p(traps[0]), p(paras[2]), small(junk["tracker"]),
            p(paras[3]), f'<h2 class="mt-8 text-2xl font-bold">{_e(sub)}</h2>']
    body += [p(x) for x in paras[4:7]] + [small(junk["related"]), p(traps[1])]
    body += ['<div class="aspect-video mt-6"><iframe class="w-full h-full" src="https://www.youtube.com/embed/x"></iframe></div>',
             small(junk["embed"])] + [p(x) for x in paras[7:]] + [p(junk["cta"])]
    body += [f'<div class="mt-8 flex flex-wrap gap-2 text-sm"><span class="font-semibold">{_e(junk["tag_label"])}</span>'
             + ", ".join(f'<a class="rounded bg-gray-100 px-2" href="/t/{i}">{_e(t)}</a>' for i, t in enumerate(tags)) + "</div>",
             small(junk["copyright"])]
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} - Northern Post</title>
<meta property="og:title" content="{_e(title)}"><meta property="article:published_time" content="2023-05-04T08:30:00+02:00"></head>
<body class="bg-white antialiased"><div class="flex min-h-screen flex-col"><div class="border-b px-4 py-3"><a class="font-bold" href="/">Northern Post</a>
<a class="ml-4" href="/world">World</a> <a class="ml-4" href="/business">Business</a></div>
<div class="mx-auto max-w-3xl px-4 py-8"><h1 class="text-4xl font-extrabold">{_e(title)}</h1>
<div class="mt-2 text-sm text-gray-600">By Anna Berg · May 4, 2023</div>
<div class="mt-6">{"".join(body)}</div></div>
<div class="bg-gray-900 px-4 py-6 text-white"><p>About us · Contact · Privacy</p></div></div></body></html>"""


def bare(title, paras, sub, tags, junk, traps) -> str:
    """No classes or ids at all: every boilerplate line is a plain paragraph."""
    p = lambda t: f"<p>{_e(t)}</p>"  # noqa: E731
    body = [f"<h1>{_e(title)}</h1>", p(title), p(paras[0]), '<p><img src="/photos/1.jpg" alt=""></p>', p(junk["caption"]),
            p(junk["credit"]), p(paras[1]), p(paras[2]), p(traps[0]), p(junk["related"]), p(paras[3]), f"<h3>{_e(sub)}</h3>"]
    body += [p(x) for x in paras[4:8]] + [p(junk["tracker"]), p(traps[1]), p(junk["embed"])]
    body += [p(x) for x in paras[8:]] + [p(junk["cta"]), p(f'{junk["tag_label"]} {", ".join(tags)}'), p(junk["copyright"])]
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title></head>
<body><div><a href="/">Home</a> | <a href="/news">News</a> | <a href="/sport">Sport</a></div>
<article>{"".join(body)}</article><div><p>Contact the newsroom</p></div></body></html>"""


def semantic(title, paras, sub, tags, junk, traps) -> str:
    """Semantic markup with class names other than WordPress's (media__caption, c-credit, topics)."""
    p = lambda t: f"<p>{_e(t)}</p>"  # noqa: E731
    body = [p(paras[0]), p(paras[1]),
            f'<figure class="media"><img src="/m/1.jpg" alt=""><figcaption class="media__caption">{_e(junk["caption"])}'
            f'<span class="c-credit">{_e(junk["credit"])}</span></figcaption></figure>',
            p(paras[2]), p(traps[0]), f'<div class="inline-promo"><a href="/x">{_e(junk["related"])}</a></div>', p(paras[3]),
            f"<h2>{_e(sub)}</h2>"] + [p(x) for x in paras[4:7]]
    body += [f'<div class="instagram-media"><p>{_e(junk["embed"])}</p></div>', p(traps[1])] + [p(x) for x in paras[7:]]
    body += [f'<div class="newsletter-box"><p>{_e(junk["cta"])}</p></div>', f'<p class="stat">{_e(junk["tracker"])}</p>']
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} | The Courier</title>
<meta name="author" content="Lee Chang"><meta name="keywords" content="{_e(", ".join(tags))}"></head>
<body><header class="masthead"><nav><ul><li><a href="/">Home</a></li><li><a href="/politics">Politics</a></li></ul></nav></header>
<main><article class="story"><h1 class="story__headline">{_e(title)}</h1><p class="story__byline">By Lee Chang</p>
<div class="story__body">{"".join(body)}</div>
<ul class="topics">{"".join(f'<li><a href="/topic/{i}">{_e(t)}</a></li>' for i, t in enumerate(tags))}</ul>
<p class="legal">{_e(junk["copyright"])}</p></article></main>
<footer><p>The Courier</p></footer></body></html>"""


def table(title, paras, sub, tags, junk, traps) -> str:
    """An old table layout: <br><br> between paragraphs, <font> and <b> for headings."""
    br = "<br><br>\n"
    lines = [paras[0], paras[1], junk["caption"], paras[2], traps[0], paras[3], f"<b>{_e(sub)}</b>"] + paras[4:7] \
        + [junk["embed"], traps[1]] + paras[7:] + [junk["related"], junk["cta"], junk["tracker"]]
    text = br.join(x if x.startswith("<b>") else _e(x) for x in lines)
    return f"""<html><head><title>{_e(title)}</title></head><body>
<table width="100%"><tr><td width="20%" valign="top"><a href="/">Front page</a><br><a href="/archive">Archive</a></td>
<td valign="top"><font size="5"><b>{_e(title)}</b></font><br><br><font size="2">{text}{br}{_e(junk["tag_label"])} {_e(", ".join(tags))}{br}{_e(junk["copyright"])}</font></td></tr></table>
</body></html>"""


STORY_ORDER = {  # the story lines of each template, in page order
    "utility": lambda paras, sub, traps: paras[:2] + [traps[0]] + paras[2:4] + [sub] + paras[4:7] + [traps[1]] + paras[7:],
    "bare": lambda paras, sub, traps: paras[:3] + [traps[0]] + [paras[3], sub] + paras[4:8] + [traps[1]] + paras[8:],
    "semantic": lambda paras, sub, traps: paras[:3] + [traps[0]] + [paras[3], sub] + paras[4:7] + [traps[1]] + paras[7:],
    "table": lambda paras, sub, traps: paras[:3] + [traps[0]] + [paras[3], sub] + paras[4:7] + [traps[1]] + paras[7:],
}

TEMPLATES = {"utility": utility, "bare": bare, "semantic": semantic, "table": table}


def build() -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "html").mkdir(exist_ok=True)
    truth = {}
    n = 0
    for a, (title, paras, sub, tags) in enumerate(_articles()):
        for name, template in TEMPLATES.items():
            junk, traps = _junk(n), [TRAPS[n % len(TRAPS)], TRAPS[(n + 3) % len(TRAPS)]]
            page_id = f"{name}-{a}"
            (OUT / "html" / f"{page_id}.html").write_text(template(title, paras, sub, tags, junk, traps), encoding="utf-8")
            gold_lines = STORY_ORDER[name](paras, sub, traps)  # page order: shingles cross paragraph ends
            junk_lines = [v for k, v in junk.items() if k != "tag_label"]
            if name == "bare":
                junk_lines.append(title)  # repeated headline as a first paragraph
            truth[page_id] = {"articleBody": "\n".join(gold_lines), "url": f"https://example-news.test/{page_id}",
                              "junk": junk_lines, "tags": tags, "template": name}
            n += 1
    (OUT / "ground-truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return truth


SEED_JUNK = ["LONDON, ENGLAND - MARCH 15", "(Photo by Justin Tallis - WPA Pool/Getty Images)", "@YouTube", "Tags",
             "Real Time Analytics", "Share this", "Share on Facebook", "Related", "Sign up for our free newsletter",
             "Great reporting, thanks for covering this.", "© 2022 The Daily Ledger", "All rights reserved",
             "Biden to Travel to Brussels for Emergency NATO Summit"]


def build_seed() -> dict:
    """Gold for the five seed pages (tests/data/seed): story paragraphs and subheading in page order."""
    _, paras, sub, tags = _seed_story()
    page = (REPO / "tests" / "data" / "seed" / "wp__bare_p.html").read_text(encoding="utf-8")
    content = page.split('<div class="entry-content">', 1)[1]
    order = [html.unescape(re.sub(r"<[^>]+>", "", p)).strip() for p in re.findall(r"<(?:p|h2)>(.*?)</(?:p|h2)>", content)]
    story = [line for line in order if line in paras or line == sub]
    truth = {path.stem: {"articleBody": "\n".join(story), "url": f"https://daily-ledger.test/{path.stem}",
                         "junk": SEED_JUNK, "tags": tags + ["Vladimir putin"], "template": "seed"}
             for path in sorted((REPO / "tests" / "data" / "seed").glob("*.html"))}
    folder = HERE / "seed"
    folder.mkdir(exist_ok=True)
    (folder / "ground-truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return truth


if __name__ == "__main__":
    print(f"{len(build())} pages written to {OUT}")
    print(f"{len(build_seed())} seed pages' gold written to {HERE / 'seed'}")
