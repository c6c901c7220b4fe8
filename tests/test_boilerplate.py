"""Each boilerplate rule fires on the shapes it is for, and real story sentences survive it.

The text rules are tested line by line through :func:`classify_line` / :func:`clean_text`; the
DOM rules on small pages through :func:`prune_dom`. Story sentences that merely contain a
trigger word ("photo", "Reuters reported", "tags", "related", "follow", "subscribe",
"advertisement") must come out untouched: a rule fires on the shape of a line, never on a word.
"""
from __future__ import annotations

from collections import Counter

import pytest

from pipelines import boilerplate
from pipelines.boilerplate import classify_line, clean_text, parse_html, prune_dom

STORY_SENTENCES = [
    "The photo, first published by Reuters on Monday, showed the damaged building from the air.",
    "Officials said the delays were related to staffing shortages at the border crossing, Reuters reported.",
    "Investigators said the suspects had removed the tags from the stolen equipment before selling it online.",
    "Readers who follow the case closely will remember that the first hearing was postponed in March.",
    "Advertisement revenue at the group fell by 12% last year, the company said in its annual report.",
    "Those who subscribe to the theory argue that the credit squeeze began long before the crisis.",
    "Related coverage of the summit has focused on the defence budget, he said.",
    "He told AFP that the images were taken by a drone over the city (the army denies it).",
    "Zelensky on Ceasefire Efforts With Vladimir Putin",
    "Copyright lawyers said the ruling could change how publishers licence their archives.",
    "Click here, the message read, and the victims were taken to a fake bank website.",
    "Follow-up talks are due in Geneva next week, according to a statement from the ministry.",
    "Sign language interpreters were present at every briefing, officials said.",
    "WASHINGTON (AP) — New uncertainty hangs over the Democratic presidential primary as 10 candidates meet.",
    "In 2019, a photographer for Getty Images captured the moment the wall came down, he recalled in an interview.",
]


@pytest.mark.parametrize("sentence", STORY_SENTENCES)
def test_story_sentences_survive_every_rule(sentence):
    assert classify_line(sentence, ["Ukraine may never join NATO"]) is None
    text, tags = clean_text(sentence, "Ukraine may never join NATO", Counter())
    assert text == sentence and tags == []


@pytest.mark.parametrize("line", [
    "LONDON, ENGLAND - MARCH 15: Ukraine's President Volodymyr Zelensky addresses by video link attendees. "
    "(Photo by Justin Tallis - WPA Pool/Getty Images)",
    "Firefighters work at the scene of the blast on Monday. (Photo: Jane Doe/AFP via Getty Images)",
    "A police officer stands guard near the embassy (AP Photo/Evan Vucci)",
    "The minister arrives for talks in Brussels, Belgium. REUTERS/Yves Herman",
    "Demonstrators gather outside parliament on Tuesday evening. Photograph: Tom Jenkins/The Guardian",
    "Supporters wave flags during the rally in the capital. Picture: PA Images",
    "Jewels after Jewels, installation views, photos © Inexhibit, 2018",
    "Image: Reuters",
    "Photo credit: Getty Images",
    "Credit: Maria Lopez/EPA-EFE",
    "Roughly 13,000 US troops remain in Afghanistan [File: Reuters]",
])
def test_caption_and_credit_lines(line):
    assert classify_line(line) == "caption"


@pytest.mark.parametrize("line", ["@YouTube", "@Twitter", "@ Instagram", "View this post on Instagram",
                                  "A post shared by The Ledger (@theledger)", "pic.twitter.com/AbC123xYz",
                                  "Watch on YouTube", "[embed]https://youtu.be/x[/embed]",
                                  "https://www.youtube.com/watch?v=Xyz123AbC"])
def test_embed_residue(line):
    assert classify_line(line) == "embed"


@pytest.mark.parametrize("line", ["Real Time Analytics", "Web Analytics", "Advertisement", "ADVERTISEMENT",
                                  "Story continues below advertisement", "Share this:", "Share on Facebook",
                                  "Copyright © 2024 Example Media. All rights reserved.", "© 2023 The Daily Ledger",
                                  "All rights reserved.", "(c) 2024 Northern Post Ltd", "Continue reading"])
def test_widget_and_copyright_lines(line):
    assert classify_line(line) == "widget"


@pytest.mark.parametrize("line", ["Related: Leaders meet for emergency summit in Brussels", "READ MORE: Markets slide",
                                  "See also: What the new rules mean for travellers", "Read more",
                                  "SEE MORE: Hong Kong protests: 800 students under siege in university",
                                  "You may also like...", "DON'T MISS", "Related"])
def test_teaser_lines(line):
    assert classify_line(line) == "teaser"


@pytest.mark.parametrize("line", ["Follow us on Twitter and Facebook for the latest updates.",
                                  "Sign up for our daily briefing newsletter.",
                                  "Subscribe to our newsletter to get the top stories in your inbox.",
                                  "Click here to download our app.", "Have a tip? Email us at tips@example-news.com.",
                                  "Follow Newsbeat on Instagram, Facebook, Twitter and YouTube.",
                                  "Get the latest updates right in your inbox. Subscribe to NJ.com's newsletters."])
def test_calls_to_action(line):
    assert classify_line(line) == "call_to_action"


def test_a_sentence_with_one_call_to_action_among_story_sentences_stays():
    line = "The mayor said the plan would be put to a vote in June. Sign up for the consultation closes on Friday."
    assert classify_line(line) is None


def test_tags_line_moves_to_source_tags():
    removed = Counter()
    text, tags = clean_text("Story paragraph one.\nTags: Ukraine, NATO, Russia, Vladimir putin\nMore story.",
                            None, removed)
    assert text == "Story paragraph one.\nMore story."
    assert tags == ["Ukraine", "NATO", "Russia", "Vladimir putin"]
    assert removed["text:tags"] == 1


@pytest.mark.parametrize("label", ["Tags", "Topics:", "Filed under:", "Tagged:", "Keywords:"])
def test_tag_header_takes_the_next_line_as_its_list(label):
    text, tags = clean_text(f"Story paragraph.\n{label}\nIsrael, Palestine, United States", None, Counter())
    assert text == "Story paragraph." and tags == ["Israel", "Palestine", "United States"]


def test_tags_label_before_a_sentence_is_not_a_tag_list():
    line = "Topics: the council will discuss housing, transport and schools at its next meeting. It meets monthly."
    text, tags = clean_text(line, None, Counter())
    assert text == line and tags == []


def test_repeated_headline_only_as_first_line():
    title = "Zelensky Admits Ukraine May Never Join NATO"
    removed = Counter()
    text, _ = clean_text(f"{title}\nFirst paragraph of the story.\n{title}", [title + " | The Daily Ledger"], removed)
    assert text == f"First paragraph of the story.\n{title}"
    assert removed["text:repeated_headline"] == 1


def test_teaser_header_takes_its_headline_list_but_not_the_story_after_it():
    text, _ = clean_text("Story one.\nRelated\n- NASA mission could spot alien life\n- Photos: Europa\n"
                         "The probe will launch in 2024, the agency said on Tuesday in a statement.", None, Counter())
    assert text == "Story one.\nThe probe will launch in 2024, the agency said on Tuesday in a statement."


def test_standfirst_equal_to_description_is_dropped_only_unpunctuated():
    description = "One member of the Browns' defense didn't hold back on Monday"
    text, _ = clean_text(f"{description}\nThe story starts here.", None, Counter(), description)
    assert text == "The story starts here."
    lead = "The council approved the budget on Monday after a long debate."
    text, _ = clean_text(f"{lead}\nMore.", None, Counter(), lead)
    assert text.startswith(lead)


def test_tweet_keeps_its_text_but_not_the_picture_link():
    text, _ = clean_text("Oh, no. The campaign is just as bad. pic.twitter.com/3BDnrvkoms", None, Counter())
    assert text == "Oh, no. The campaign is just as bad."


def test_split_tags():
    assert boilerplate.split_tags("Ukraine, NATO; Russia | Putin") == ["Ukraine", "NATO", "Russia", "Putin"]


# ---- DOM pre-pass ----------------------------------------------------------------------------

def _page(body: str):
    return parse_html(f"<!DOCTYPE html><html><head><title>t</title></head><body>{body}</body></html>")


def _text(tree) -> str:
    return " ".join(tree.find("body").text_content().split())


STORY = "<p>" + "A real story paragraph about the summit in Brussels that goes on for a while. " * 3 + "</p>"


@pytest.mark.parametrize("block,rule", [
    ('<div class="wp-caption-text">Caption text</div>', "dom:caption"),
    ('<span class="image-credit">(Photo by X/Getty Images)</span>', "dom:caption"),
    ("<figcaption>Caption text</figcaption>", "dom:figcaption"),
    ('<div class="share-buttons"><a href="#">Share on Facebook</a></div>', "dom:share"),
    ('<div id="jp-relatedposts"><a href="/a">Other story</a></div>', "dom:related"),
    ('<section class="newsletter-signup"><p>Sign up</p></section>', "dom:newsletter"),
    ('<div class="ad-slot">Advertisement</div>', "dom:ad"),
    ('<div class="video-embed"><p>@YouTube</p></div>', "dom:embed"),
    ('<span class="tags-links">Tags: <a href="/t/1">Ukraine</a></span>', "dom:tags"),
    ('<ul><li><a href="/1">Headline one</a></li><li><a href="/2">Headline two</a></li></ul>', "dom:link_list"),
])
def test_dom_rules_drop_boilerplate_blocks(block, rule):
    tree = _page(f"<article>{STORY}{block}{STORY}</article>")
    removed = Counter()
    prune_dom(tree, removed)
    assert removed[rule] == 1
    assert "real story paragraph" in _text(tree)
    for gone in ("Caption text", "Getty", "Share on Facebook", "Other story", "Sign up", "Advertisement",
                 "@YouTube", "Headline one"):
        assert gone not in _text(tree)


def test_story_container_with_a_boilerplate_word_is_kept():
    tree = _page(f'<div class="entry-content has-caption share-enabled">{STORY}{STORY}</div>')
    removed = Counter()
    prune_dom(tree, removed)
    assert not removed and "real story paragraph" in _text(tree)


def test_long_prose_block_is_kept_whatever_its_name():
    tree = _page(f'<div class="post-share-wrapper">{STORY * 8}</div>')
    prune_dom(tree, Counter())
    assert "real story paragraph" in _text(tree)


def test_inline_links_and_mixed_lists_are_kept():
    tree = _page('<article><p>He cited <a class="tag" href="/t">a report</a> on tariffs.</p>'
                 '<ul><li>First point, with <a href="/x">a link</a> inside a longer sentence.</li>'
                 '<li>Second point without a link.</li></ul></article>')
    removed = Counter()
    prune_dom(tree, removed)
    assert "a report" in _text(tree) and "First point" in _text(tree) and not removed


def test_hover_card_inside_a_sentence_goes_but_the_name_stays():
    tree = _page('<article><p>Rep. <span class="people"><a href="/p">Ilhan Omar</a><span class="card"><span>'
                 '<img src="/i.jpg"><a href="/a">Other headline one</a> <a href="/b">Other headline two</a>'
                 '</span></span></span> (D-Minn.) said on Monday.</p></article>')
    removed = Counter()
    prune_dom(tree, removed)
    assert removed["dom:hover_card"] == 1
    assert _text(tree) == "Rep. Ilhan Omar (D-Minn.) said on Monday."


def test_quoted_tweet_is_kept_out_of_its_social_wrapper():
    tree = _page(f'<article>{STORY}<div class="social-media-embed"><blockquote class="twitter-tweet"><p>'
                 'Yes this is real.</p>— Name (@handle)</blockquote></div>{STORY}</article>')
    removed = Counter()
    prune_dom(tree, removed)
    assert "Yes this is real." in _text(tree)
    assert removed["dom:tweet_kept"] == 1


def test_tag_label_block_gives_its_tags():
    tree = _page(f'<article>{STORY}<div class="mt-8 flex"><span class="font-semibold">Topics:</span>'
                 '<a href="/t/1">Israel</a>, <a href="/t/2">Palestine</a></div></article>')
    tags = prune_dom(tree, Counter())
    assert tags == ["Israel", "Palestine"] and "Topics" not in _text(tree)


def test_layout_table_becomes_blocks():
    tree = _page(f"<table><tr><td>Menu</td><td>{'Story text line. ' * 40}<br><br>More.</td></tr></table>")
    removed = Counter()
    prune_dom(tree, removed)
    assert removed["dom:layout_table"] == 1 and not list(tree.iter("table", "td"))


def test_tail_text_of_a_removed_element_is_kept():
    tree = _page('<p>Before <span class="photo-credit">Photo: AFP</span> after the credit.</p>')
    prune_dom(tree, Counter())
    assert _text(tree) == "Before after the credit."


def test_bracketed_abbreviation_that_spells_an_agency_in_lower_case_is_not_a_credit():
    line = "Das Thema mit dem höchsten Potenzial wird seit Jahren diskutiert: die elektronische Patientenakte (ePA)"
    assert classify_line(line) is None



def test_parsed_trees_use_plain_html_elements_from_a_c_level_lookup():
    """lxml.html's Python lookup would make <form>/<input> FormElement/InputElement; the C-level one
    gives HtmlElement everywhere, with text_content() and the rest of lxml.html's API."""
    from lxml import html

    tree = parse_html(b"<html><body><form><input name=q></form><p>Story <b>text</b></p></body></html>")
    assert {type(el) for el in tree.iter()} == {html.HtmlElement}
    assert tree.find(".//p").text_content() == "Story text"
