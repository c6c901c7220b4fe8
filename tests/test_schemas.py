"""The dataclasses, the JSON schemas and the Avro schemas describe the same records.

Each of the three is reduced to one shape (field names, types, nullability, nesting) and the
shapes are compared, so a field added to one and not the others fails here.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from importlib import resources

import pytest

from schemas import (SCHEMA_VERSION, Article, DeadLetter, article_json_schema, dead_letter_json_schema,
                     validate_article, validate_dead_letter)
from schemas.article import Dedup, Evidence, Extraction, Source, Topic
from schemas.wire import ARTICLE, DEAD_LETTER, avro_decode

SCALARS = {str: "string", int: "int", float: "float", bool: "bool"}


# -- shapes ---------------------------------------------------------------------------------------

def dataclass_shape(tp):
    """(nullable, kind) of a Python annotation; records map field name -> shape."""
    nullable = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable, tp = len(args) < len(typing.get_args(tp)), args[0]
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kind = ("record", {f.name: dataclass_shape(hints[f.name]) for f in dataclasses.fields(tp)})
    elif origin is list:
        kind = ("array", dataclass_shape(typing.get_args(tp)[0]))
    elif origin is dict:
        kind = ("map", dataclass_shape(typing.get_args(tp)[1]))
    else:
        kind = SCALARS[tp]
    return nullable, kind


def json_shape(node, root):
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    types_ = node.get("type")
    types_ = [types_] if isinstance(types_, str) else list(types_ or [])
    nullable = "null" in types_
    types_ = [t for t in types_ if t != "null"]
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        assert all(isinstance(v, str) for v in values)
        return nullable, "string"
    (t,) = types_
    if t == "object" and "properties" in node:
        assert node.get("additionalProperties") is False, "records are closed"
        assert set(node["required"]) == set(node["properties"]), "every field is always present"
        return nullable, ("record", {k: json_shape(v, root) for k, v in node["properties"].items()})
    if t == "object":
        return nullable, ("map", json_shape(node["additionalProperties"], root))
    if t == "array":
        return nullable, ("array", json_shape(node["items"], root))
    return nullable, {"string": "string", "integer": "int", "number": "float", "boolean": "bool"}[t]


AVRO = {"string": "string", "long": "int", "int": "int", "double": "float", "float": "float", "boolean": "bool"}


def avro_shape(node, named):
    nullable = False
    if isinstance(node, list):
        rest = [n for n in node if n != "null"]
        assert len(rest) == 1, "only [null, T] unions"
        nullable, node = len(rest) < len(node), rest[0]
    if isinstance(node, str):
        if node in named:
            return nullable, named[node]
        return nullable, AVRO[node]
    t = node["type"]
    if t == "record":
        kind = ("record", {f["name"]: avro_shape(f["type"], named) for f in node["fields"]})
        named[node["name"]] = kind
        for f in node["fields"]:
            if avro_shape(f["type"], named)[0]:
                assert f.get("default", "missing") is None, f"nullable {f['name']} needs default null"
        return nullable, kind
    if t == "array":
        return nullable, ("array", avro_shape(node["items"], named))
    if t == "map":
        return nullable, ("map", avro_shape(node["values"], named))
    return avro_shape(t, named)


def load_avsc(name):
    return json.loads(resources.files("schemas").joinpath(name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("cls,json_schema,avsc", [
    (Article, article_json_schema, "article.avsc"),
    (DeadLetter, dead_letter_json_schema, "deadletter.avsc"),
])
def test_dataclass_json_schema_and_avro_schema_are_in_step(cls, json_schema, avsc):
    from_python = dataclass_shape(cls)
    from_json = json_shape(json_schema(), json_schema())
    from_avro = avro_shape(load_avsc(avsc), {})
    assert from_json == from_python
    assert from_avro == from_python
    # field order is part of the Avro binary layout: keep it the dataclass's order
    assert [f["name"] for f in load_avsc(avsc)["fields"]] == [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("json_schema,avsc", [(article_json_schema, "article.avsc"),
                                              (dead_letter_json_schema, "deadletter.avsc")])
def test_one_schema_version_everywhere(json_schema, avsc):
    schema = json_schema()
    assert schema["$id"].endswith("/" + SCHEMA_VERSION)
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    doc = load_avsc(avsc)
    assert f"schema version {SCHEMA_VERSION}" in doc["doc"]
    assert {f["name"]: f for f in doc["fields"]}["schema_version"]["default"] == SCHEMA_VERSION


# -- sample records through both wire formats --------------------------------------------------

def sample_article() -> dict:
    return Article(
        id="0123456789abcdef0123456789abcdef", url="https://news.example/a?utm_source=x",
        canonical_url="https://news.example/a", source=Source("https://news.example/feed.xml", "Example", "news.example"),
        title="Zelensky in Brussels", text="Kyiv said on Monday ... The alliance met in Brussels.", lead=None,
        authors=["A. Writer"], published_at="2025-03-15T10:00:00+00:00", fetched_at="2025-03-15T10:05:00+00:00",
        language="en", source_tags=["Ukraine", "NATO"],
        topics=[Topic("ukraine", "Ukraine", 0.9, [Evidence("Zelensky", 0, 0, "title"), Evidence("Kyiv", 0, 0, "text")])],
        dedup=Dedup("c0ffee", "beef", "0123456789abcdef0123456789abcdef", None, None),
        extraction=Extraction("trafilatura", "1", {"captions": 2}, None),
        site_name="Example", image=None, taxonomy_version="1",
    ).to_dict()


def sample_dead_letter() -> dict:
    return DeadLetter(stage="fetch", reason="http_status: 500", input_ref="https://news.example/b",
                      failed_at="2025-03-15T10:05:00+00:00", feed_url="https://news.example/feed.xml").to_dict()


@pytest.mark.parametrize("make,validate,encoder,avsc", [
    (sample_article, validate_article, ARTICLE, "article.avsc"),
    (sample_dead_letter, validate_dead_letter, DEAD_LETTER, "deadletter.avsc"),
])
def test_sample_records_valid_and_identical_through_json_and_avro(make, validate, encoder, avsc):
    record = make()
    validate(record)
    key, value, headers = encoder(record)
    assert key.decode() == record[encoder.key_field]
    assert json.loads(value) == record
    assert encoder(record) == (key, value, headers), "the same record always gives the same bytes"
    key, value, headers = encoder.with_format("avro")(record)
    assert avro_decode(value, avsc) == record
    assert dict(headers)["content_type"] == b"avro/binary"


def test_avro_refuses_a_record_that_left_the_schema():
    record = sample_article()
    record["surprise"] = 1
    with pytest.raises(ValueError):
        ARTICLE.with_format("avro")(record)
