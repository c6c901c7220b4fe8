"""Topic tagging: the substantive-subject rule, its exceptions, normalisation and evidence offsets,
the taxonomy format, and reloading an edited taxonomy without a restart."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

from pipelines.tag import (Taxonomy, TaxonomyWatcher, default_taxonomy, expand, load_taxonomy, normalize,
                           sentence_starts, tag_article, tag_records)
from tests.conftest import DATA, REPO


def topic_ids(title, text, taxonomy=None, lead=None):
    return {t["id"] for t in tag_article(title, text, taxonomy, lead)}


def assert_evidence_points_at_source(title, text, topics):
    for topic in topics:
        assert topic["evidence"], topic
        for ev in topic["evidence"]:
            source = title if ev["field"] == "title" else text
            assert source[ev["offset"]:ev["offset"] + len(ev["term"])] == ev["term"], ev


# --- the rule ------------------------------------------------------------------------------------

BODY = "Wheat prices fell on Monday.\nTraders said supplies were ample. Demand was weak in Asia.\n"


def test_title_lead_or_two_sentences_make_a_topic_one_passing_mention_does_not():
    assert topic_ids("Ukraine raises grain export forecast", BODY) == {"ukraine"}
    assert topic_ids("Grain", "Ukraine raised its export forecast on Monday.\n" + BODY) == {"ukraine"}
    two = BODY + "Ukraine expects a record harvest. Farmers said the weather helped. Ukraine will export more."
    assert topic_ids("Grain", two) == {"ukraine"}
    one = BODY + "Some exporters expect more business, as in Ukraine last spring."
    assert topic_ids("Grain", one) == set()


def test_two_mentions_in_one_sentence_are_one_sentence():
    text = BODY + "Mr. Putin met Gen. Valery Gerasimov, and Putin later said nothing."
    assert topic_ids("Markets", text) == set()


def test_sentences_do_not_end_at_abbreviations_or_initials():
    text = "Mr. Putin met Gen. Gerasimov on Jan. 5. U.S. officials said so. Vladimir V. Putin left!\nNext."
    starts = sentence_starts(text)
    assert [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)])] == [
        "Mr. Putin met Gen. Gerasimov on Jan. 5.", "U.S. officials said so.", "Vladimir V. Putin left!", "Next."]


def test_the_lead_is_the_first_paragraph_at_most_two_sentences():
    text = "Prices rose. Volumes fell. Later, Ukraine said it would export more. No more here."
    assert topic_ids("Markets", text) == set()  # one paragraph, third sentence: not the lead
    assert topic_ids("Markets", "Prices rose as Ukraine cut exports.\n" + BODY) == {"ukraine"}
    lead = "Prices rose and volumes fell on the exchange as the harvest came in."
    assert topic_ids("Markets", lead + " Ukraine cut exports.\n" + BODY, lead=lead) == set()
    # a dateline or byline line alone is not the lead: the paragraph after it is
    assert topic_ids("Markets", "By Jane Doe, Global Wire\nPrices rose as Ukraine cut exports.\n" + BODY) == {"ukraine"}


def test_mentions_inside_an_enumeration_of_three_countries_are_passing():
    text = "Wheat went to Egypt, Turkey, Ukraine and Indonesia this year.\n" + BODY
    assert topic_ids("Wheat exports", text) == set()
    assert topic_ids("Germany, France and Russia top gas use", BODY) == set()
    assert topic_ids("GERMANY, FRANCE AND RUSSIA TOP GAS USE", BODY) == set()
    assert topic_ids("Talks", "For us, China and Russia matter.\n" + BODY) == {"russia"}  # "us" is no country
    # ... unless the article also speaks of the country outside the enumeration
    assert topic_ids("Wheat exports", text + "Ukraine's harvest was large.") == {"ukraine"}
    assert topic_ids("Kazakhstan, Uzbekistan and Russia sign gas deal", BODY + "Gazprom will deliver more.") == {"russia"}
    # two countries are no enumeration
    assert topic_ids("Border", "Poland will fortify its border with Russia and Belarus.\n" + BODY) == {"russia"}
    # Polish genitive, after "z"
    assert topic_ids("Zboże", "Import zboża z Rumunii, Węgier i Ukrainy rośnie.\nCeny spadają.") == set()


def test_support_terms_count_only_where_the_topic_is_named():
    lonely = "Talks went on.\nThe Russian chef left early. Russians in the audience applauded."
    assert topic_ids("Dinner", lonely) == set()
    assert topic_ids("Dinner", lonely + " The Kremlin said little.") == {"russia"}


def test_the_alliance_counts_for_nato_unless_the_article_names_another_alliance():
    text = "Leaders met.\nNATO will grow, officials said. The alliance approved new plans."
    assert topic_ids("Summit", text) == {"nato"}
    other = "Leaders met.\nThe opposition alliance picked a candidate. The alliance wants to stay in NATO."
    assert topic_ids("Election", other) == set()


# --- what is not a mention ---------------------------------------------------------------------------

def test_us_namesakes_switch_the_name_off_for_the_whole_article():
    text = ("ODESSA, Texas (AP) - Rigs in Odessa, Texas, were idle on Monday.\n"
            "Odessa has seen a boom. The Odessa mayor said Odessa would recover.")
    assert topic_ids("Odessa oil town slows", text) == set()
    idaho = ("A judge set a trial date in the killings of four University of Idaho students.\n"
             "Moscow police said the house was demolished. Moscow is a quiet college town.")
    assert topic_ids("Trial date set", idaho) == set()
    assert topic_ids("Rays stadium vote", "ST. PETERSBURG, Fla. - The council will vote.\nSt. Petersburg waits.") == set()
    # without the cue Moscow is Moscow
    assert topic_ids("Markets", "Moscow stocks fell on Monday.\n" + BODY) == {"russia"}


def test_russian_as_a_language_cuisine_or_origin_is_not_russia():
    text = ("The Russian-born violinist played Tchaikovsky.\nHe speaks Russian at home. "
            "The menu is printed in Russian. Russian dumplings were served.")
    assert topic_ids("Concert", text) == set()
    # even in an article that names Russia once
    text += " He left Russia in 1990."
    assert topic_ids("Concert", text) == set()


@pytest.mark.parametrize("title,text", [
    ("How to make a crisp chicken Kiev", "Chicken Kiev is a classic.\nChill the butter. Serve the chicken Kiev hot."),
    ("The Moscow Mule is back", "The Moscow Mule is a vodka drink.\nA Moscow Mule needs lime. Serve it cold."),
    ("Iraq reports Crimean-Congo fever cases", "Crimean-Congo haemorrhagic fever spreads.\nTicks carry it."),
    ("Medvedev reaches US Open quarter-finals", "Daniil Medvedev won on Sunday.\nMedvedev served well. Medvedev plays next."),
    ("Norway's budget", "The budget draws on the oil fund.\nFinance Minister Jens Stoltenberg presented it. "
                        "Stoltenberg said the fiscal rule held."),
    ("Festival de la poutine", "La poutine est reine.\nPoutine au homard, poutine végétarienne."),
])
def test_look_alikes_are_not_topics(title, text):
    assert topic_ids(title, text) == set()


def test_wire_credit_lines_are_not_the_story():
    text = ("Grain prices fell in Brussels on Monday.\nTraders said Ukraine exported less. Prices fell.\n"
            "(Reporting by Pavel Polityuk in Kyiv; Editing by Jan Harvey)")
    assert topic_ids("Grain prices fall", text) == set()
    assert topic_ids("Grain prices fall", text.replace("Prices fell.", "Kyiv said more would come.")) == {"ukraine"}


def test_un_secretary_general_is_not_nato():
    text = ("UN Secretary-General Antonio Guterres called for a ceasefire.\n"
            "The secretary-general spoke in New York. Kyiv has asked NATO members for air defence.")
    assert "nato" not in topic_ids("Guterres calls for ceasefire in Ukraine", text)


# --- named representatives, languages, case ----------------------------------------------------------

@pytest.mark.parametrize("title,expected", [
    ("Zelensky heads to Washington", {"ukraine"}),
    ("Kremlin says no date set for talks", {"russia"}),
    ("Stoltenberg says allies ready to defend every inch", {"nato"}),
    ("Fierce fighting near Pokrovsk", {"ukraine"}),
    ("Microsoft says Russian hackers targeted diplomats", {"russia"}),
])
def test_named_representatives_stand_for_their_topic(title, expected):
    assert topic_ids(title, BODY) == expected


@pytest.mark.parametrize("lang,title,expected", [
    ("uk", "Зеленський закликав союзників по НАТО до підтримки", {"ukraine", "nato"}),
    ("uk", "Уряд звернувся до Росії", {"russia"}),
    ("ru", "Путин провел совещание в Кремле", {"russia"}),
    ("ru", "Украина получила помощь", {"ukraine"}),
    ("de", "Nato-Gipfel: Selenskyj trifft Verbündete in Kiew", {"nato", "ukraine"}),
    ("fr", "L'OTAN renforce son flanc est face à la Russie", {"nato", "russia"}),
    ("es", "La OTAN acusa a Rusia de sabotajes", {"nato", "russia"}),
    ("pl", "Rolnicy protestują przeciwko zbożu z Ukrainy", {"ukraine"}),
    ("pl", "Wizyta w Kijowie", {"ukraine"}),
])
def test_other_languages_and_their_inflections(lang, title, expected):
    assert topic_ids(title, "—") == expected


def test_stems_take_short_endings_only():
    assert topic_ids("Кримінальна справа", "—") == set()  # "кримінал" is not "Крим"
    assert topic_ids("Україною", "—") == {"ukraine"}
    assert topic_ids("Путинизмами", "—") == set()  # past the longest ending allowed


def test_exact_case_terms():
    assert topic_ids("Nato to open office in Japan", BODY) == {"nato"}
    assert topic_ids("Un libro nato a Roma", BODY) == set()
    assert topic_ids("UKRAINE WAR: KYIV HIT BY DRONES", BODY) == {"ukraine"}  # case-insensitive terms


# --- normalisation and evidence offsets -----------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Straße: Kyїv… “NATO’s” ﬁne Moscú Mosc\u0301u Ｕｋｒａｉｎｅ end",
    "Ukrаine (a Cyrillic а) and Укрaїна (a Latin a)",
    "Emoji 🙂 Україна ⬇ 書 Łódź — NATO",
    "plain ASCII: U.S.-led NATO's",
])
def test_normalize_maps_every_word_back_to_the_original(text):
    folded, offsets = normalize(text)
    assert folded[0] == " " and not re.search(r"[^\w ]|_", folded)
    for m in re.finditer(r"\S+", folded):
        start, end = m.start() - 1, m.end() - 1
        o_start, o_end = (offsets.start(start), offsets.end(end)) if offsets else (start, end)
        original = text[o_start:o_end]
        assert normalize(original)[0].strip() == m.group(0), (m.group(0), original)


def test_evidence_offsets_point_at_the_original_text():
    title = "“Zelensky’s” visit: Ｕｋｒａｉｎｅ and the ﬁnal NATO summit"
    text = ("Straße… Zelensky met allies in Kyїv. NATO leaders agreed. Mosc\u0301u said nothing. "
            "The Kremlin protested.\nRussia’s foreign ministry said Moscow would respond. Україною керує Зеленський.")
    topics = tag_article(title, text)
    assert {t["id"] for t in topics} == {"ukraine", "nato", "russia"}
    assert_evidence_points_at_source(title, text, topics)
    for topic in topics:
        assert 0 < topic["score"] <= 1
        assert set(topic) == {"id", "label", "score", "evidence"}
        assert all(set(ev) == {"term", "offset", "sentence", "field"} for ev in topic["evidence"])
    fields = {ev["field"] for t in topics for ev in t["evidence"]}
    assert fields == {"title", "lead", "text"}


def test_seed_article_is_tagged_with_all_three_and_evidence():
    text = (DATA / "seed" / "seed-article.txt").read_text(encoding="utf-8")
    title = "Zelensky says Ukraine may never join NATO"
    topics = tag_article(title, text)
    assert [t["id"] for t in topics][:1] == ["ukraine"]
    assert {t["id"] for t in topics} == {"ukraine", "nato", "russia"}
    assert_evidence_points_at_source(title, text, topics)
    assert topics == sorted(topics, key=lambda t: -t["score"])


# --- taxonomy ----------------------------------------------------------------------------------------

def test_expand_sets_alternatives_and_exact_case_members():
    sets = {"state": ["Texas", "=TX"]}
    assert sorted(expand("Odessa, {state}", sets)) == [("Odessa, TX", True), ("Odessa, Texas", False)]
    assert sorted(expand("Україн{а|ою}", {})) == [("Україна", False), ("Україною", False)]
    assert list(expand("{name} ({state})", sets, name="Moscow"))[0] == ("Moscow (Texas)", False)
    with pytest.raises(ValueError, match="unknown set"):
        list(expand("{nope}", sets))


GEORGIA = textwrap.dedent("""\
    version: "t1"
    sets:
      us_city: [Atlanta, Savannah, Athens]
      countries: [Georgia, Armenia, Azerbaijan, Turkey]
    namesake_cues: ["{us_city}, {name}"]
    topics:
      - id: georgia
        label: Georgia (country)
        aliases: [Georgia, Georgian government]
        entities: {places: [Tbilisi, Batumi]}
        support: [Georgian]
        exclude: [Georgia Tech, University of Georgia]
        namesakes:
          Georgia: [Governor Brian Kemp, Peach State, Fulton County]
    """)


def test_any_taxonomy_by_configuration():
    tax = Taxonomy(yaml.safe_load(GEORGIA))
    assert topic_ids("Protests in Tbilisi", "Thousands marched.", tax) == {"georgia"}
    assert topic_ids("Georgia votes", "Voters in Georgia turned out.", tax) == {"georgia"}
    assert topic_ids("Film credits", "ATLANTA, Georgia - Georgia's studios grew.\nGeorgia leads.", tax) == set()
    assert topic_ids("Budget", "Governor Brian Kemp signed it.\nGeorgia will spend more. Georgia grows.", tax) == set()
    assert topic_ids("Football", "Georgia Tech won.\nFans cheered. Georgia Tech plays next.", tax) == set()
    assert topic_ids("Trade", "Exports to Turkey, Georgia, Armenia and Azerbaijan rose.\nPrices fell.", tax) == set()


def test_version_carries_the_declared_version_and_a_digest(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text(GEORGIA)
    first = load_taxonomy(str(path))
    assert first.version.startswith("t1+") and first.declared_version == "t1"
    path.write_text(GEORGIA + "# an edit without a version bump\n")
    assert load_taxonomy(str(path)).version != first.version
    assert default_taxonomy().version == load_taxonomy(None).version


def test_an_empty_taxonomy_is_refused():
    with pytest.raises(ValueError):
        Taxonomy({"version": "x", "topics": [{"id": "a", "label": "A"}]})


# --- reloading without a restart ------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_watcher_picks_up_an_edited_taxonomy_and_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text(GEORGIA)
    clock = Clock()
    watcher = TaxonomyWatcher(str(path), interval_s=30, clock=clock)
    article = ("Talks in Yerevan", "Armenia's leaders met.\nYerevan hosted talks. Yerevan was calm.")
    assert topic_ids(*article, watcher.current()) == set()

    path.write_text(GEORGIA.replace('"t1"', '"t2"').replace("[Tbilisi, Batumi]", "[Tbilisi, Batumi]}\n"
                                                            "      - id: armenia\n        label: Armenia\n"
                                                            "        aliases: [Armenia, Yerevan]\n        x: {"))
    clock.now += 31
    assert watcher.current().declared_version == "t1"  # broken YAML: the last good taxonomy stays
    assert watcher.errors == 1

    edited = GEORGIA.replace('"t1"', '"t2"') + "  - id: armenia\n    label: Armenia\n    aliases: [Armenia, Yerevan]\n"
    path.write_text(edited)
    clock.now += 10
    assert watcher.current().declared_version == "t1"  # not looked at before the interval is over
    clock.now += 30
    current = watcher.current()
    assert current.declared_version == "t2" and watcher.reloads == 1
    assert topic_ids(*article, current) == {"armenia"}
    clock.now += 31
    assert watcher.current() is current  # unchanged file: same compiled taxonomy


def test_watcher_without_a_path_serves_the_bundled_taxonomy():
    watcher = TaxonomyWatcher(None, interval_s=0)
    assert watcher.current() is default_taxonomy()


# --- records and the command line -----------------------------------------------------------------------

def test_tag_records_adds_topics_and_the_taxonomy_version():
    out = list(tag_records([{"id": "a", "title": "Kremlin says talks will go on", "text": "—"},
                            {"id": "b", "title": None, "text": ""}]))
    assert [t["id"] for t in out[0]["topics"]] == ["russia"]
    assert out[1]["topics"] == []
    assert {r["taxonomy_version"] for r in out} == {default_taxonomy().version}


def test_newsingest_tag_with_a_custom_taxonomy(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text(GEORGIA)
    records = [{"id": "1", "title": "Protests in Tbilisi", "text": "Thousands marched."},
               {"id": "2", "title": "Zelensky in Kyiv", "text": "He met ministers."}]
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "tag", "--taxonomy", str(path)],
                          input="\n".join(map(json.dumps, records)), capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [[t["id"] for t in r["topics"]] for r in out] == [["georgia"], []]
    assert out[0]["taxonomy_version"].startswith("t1+")


# --- the dev set itself ---------------------------------------------------------------------------------

def test_dev_set_is_well_formed():
    articles = yaml.safe_load((DATA / "tagging" / "dev.yaml").read_text(encoding="utf-8"))["articles"]
    assert len({a["id"] for a in articles}) == len(articles) >= 80
    topics = set(default_taxonomy().topic_ids)
    for art in articles:
        assert set(art["topics"]) <= topics and art["title"] and art["text"].strip(), art["id"]
    covers = {a["covers"] for a in articles}
    assert {"substantive", "passing", "country-list", "us-place", "language", "entity-only", "multilingual",
            "trap", "normalisation"} <= covers
    assert {a["lang"] for a in articles} >= {"en", "uk", "ru", "de", "fr", "es", "pl"}
