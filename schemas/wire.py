"""How a record goes on the wire: Kafka key, value bytes (JSON or Avro) and headers.

JSON is the default: compact UTF-8 with sorted keys, so the same record always gives the same
bytes and a re-sent record is byte-identical to the first copy. Avro (fastavro, the ``avro``
extra) writes the bare binary datum of ``article.avsc`` / ``deadletter.avsc``; the headers say
which schema wrote it (its CRC-64-AVRO fingerprint), so a consumer needs no schema registry.

Headers on every record: ``schema_version``, ``content_type`` (``application/json`` or
``avro/binary``) and ``record_type`` (``article`` or ``dead_letter``); Avro records add
``avro_schema_fingerprint`` (16 hex digits). ``schemas/README.md`` is the consumer's guide.
"""
from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Mapping

from schemas.article import SCHEMA_VERSION

VALUE_FORMATS = ("json", "avro")
CONTENT_TYPES = {"json": "application/json", "avro": "avro/binary"}

Encoded = tuple[bytes, bytes, list[tuple[str, bytes]]]


@functools.cache
def avro_schema(name: str) -> dict:
    """The parsed Avro schema ``schemas/<name>`` (needs fastavro)."""
    try:
        import fastavro
    except ImportError as exc:  # the optional "avro" extra
        raise ValueError("value_format avro needs fastavro: pip install 'news-ingest[avro]'") from exc
    doc = json.loads(resources.files("schemas").joinpath(name).read_text(encoding="utf-8"))
    return fastavro.parse_schema(doc)


@functools.cache
def avro_fingerprint(name: str) -> str:
    """CRC-64-AVRO fingerprint of the schema's parsing canonical form, as 16 hex digits."""
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    return fingerprint(to_parsing_canonical_form(avro_schema(name)), "CRC-64-AVRO")


def avro_decode(value: bytes, name: str) -> dict:
    """Read back one Avro value written by ``RecordEncoder`` (for consumers and tests)."""
    import fastavro

    return fastavro.schemaless_reader(io.BytesIO(value), avro_schema(name))


@dataclass(frozen=True)
class RecordEncoder:
    """Turns one record type into (key, value, headers) in one value format. Picklable."""

    record_type: str
    key_field: str
    avro_schema_file: str
    value_format: str = "json"

    def __post_init__(self):
        if self.value_format not in VALUE_FORMATS:
            raise ValueError(f"unknown value_format {self.value_format!r}: use one of {', '.join(VALUE_FORMATS)}")

    def with_format(self, value_format: str) -> "RecordEncoder":
        encoder = replace(self, value_format=value_format)
        if value_format == "avro":
            avro_schema(self.avro_schema_file)  # fail at pipeline construction, not on the workers
        return encoder

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("schema_version", SCHEMA_VERSION.encode()),
            ("content_type", CONTENT_TYPES[self.value_format].encode()),
            ("record_type", self.record_type.encode()),
        ]
        if self.value_format == "avro":
            headers.append(("avro_schema_fingerprint", avro_fingerprint(self.avro_schema_file).encode()))
        return headers

    def value(self, record: Mapping[str, Any]) -> bytes:
        if self.value_format == "json":
            return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        import fastavro

        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, avro_schema(self.avro_schema_file), record, strict=True)
        return buf.getvalue()

    def __call__(self, record: Mapping[str, Any]) -> Encoded:
        return str(record[self.key_field]).encode("utf-8"), self.value(record), self.headers()


ARTICLE = RecordEncoder("article", "id", "article.avsc")
DEAD_LETTER = RecordEncoder("dead_letter", "input_ref", "deadletter.avsc")
