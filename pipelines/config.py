"""The run configuration: one YAML file, ``${VAR}`` references expanded from the environment.

Secrets (SASL passwords) and per-environment values (broker addresses, the sample server's URL)
come in as ``${NAME}`` or ``${NAME:-default}``; an unset variable without a default is an error,
not an empty string.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from connectors.fetch import DEFAULT_USER_AGENT, FetchPolicy
from connectors.polling import PollPolicy
from pipelines.dedup import DedupConfig

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    pass


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        def sub(m):
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (used in the config)")
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


@dataclass
class Config:
    feeds: list[dict[str, Any]]
    kafka: dict[str, Any]
    fetch: FetchPolicy
    dedup: DedupConfig
    poll: PollPolicy = field(default_factory=PollPolicy)
    feed_refresh_s: float = 300.0  # streaming: how often the feed list is re-sent to the pollers
    taxonomy_path: Optional[str] = None
    taxonomy_reload_s: float = 60.0  # how often a running job checks the taxonomy file for edits
    emit_duplicates: bool = True
    feed_content_fallback: bool = True
    parallel_fetches: int = 4  # pages one worker fetches at once, while it extracts others
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def topics(self) -> dict[str, str]:
        return self.kafka["topics"]


DEFAULT_TOPICS = {"articles": "news.articles", "duplicates": "news.duplicates", "dead_letter": "news.deadletter"}


def parse_config(doc: dict[str, Any], base_dir: str = ".") -> Config:
    doc = _expand(doc or {})
    feeds = doc.get("feeds") or []
    if not feeds:
        raise ConfigError("config has no feeds")
    norm_feeds = []
    for i, f in enumerate(feeds):
        f = {"url": f} if isinstance(f, str) else dict(f)
        if not f.get("url"):
            raise ConfigError(f"feed #{i + 1} has no url")
        norm_feeds.append(f)
    kafka = dict(doc.get("kafka") or {})
    kafka.setdefault("bootstrap_servers", os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    kafka["topics"] = {**DEFAULT_TOPICS, **(kafka.get("topics") or {})}
    f = doc.get("fetch") or {}
    fetch = FetchPolicy(
        connect_timeout=float(f.get("connect_timeout_s", 5)),
        read_timeout=float(f.get("read_timeout_s", 10)),
        total_timeout=float(f.get("total_timeout_s", 30)),
        max_bytes=int(f.get("max_bytes", 10 * 1024 * 1024)),
        max_wire_bytes=int(f.get("max_wire_bytes", f.get("max_bytes", 10 * 1024 * 1024))),
        max_redirects=int(f.get("max_redirects", 5)),
        user_agent=str(f.get("user_agent", DEFAULT_USER_AGENT)),
        allow_hosts=tuple(str(h) for h in f.get("allow_hosts") or ()),
        per_host_concurrency=int(f.get("per_host_concurrency", 2)),
        per_host_min_delay=float(f.get("per_host_min_delay_s", 0.5)),
        per_host_max_wait=float(f.get("per_host_max_wait_s", 120)),
        respect_robots=bool(f.get("respect_robots", True)),
        robots_ttl=float(f.get("robots_ttl_s", 3600)),
        ca_file=f.get("ca_file"),
    )
    p = doc.get("polling") or {}
    unknown = set(p) - set(PollPolicy.__dataclass_fields__) - {"refresh_s"}
    if unknown:
        raise ConfigError(f"unknown polling setting(s): {', '.join(sorted(unknown))}")
    poll = PollPolicy(**{k: v for k, v in p.items() if k in PollPolicy.__dataclass_fields__})
    d = doc.get("dedup") or {}
    known = DedupConfig.__dataclass_fields__
    unknown = set(d) - set(known) - {"emit_duplicates"}
    if unknown:
        raise ConfigError(f"unknown dedup setting(s): {', '.join(sorted(unknown))}")
    dedup = DedupConfig(**{k: v for k, v in d.items() if k in known})
    tagging = doc.get("tagging") or {}
    taxonomy = tagging.get("taxonomy")
    if taxonomy and not os.path.isabs(taxonomy):
        taxonomy = os.path.join(base_dir, taxonomy)
    return Config(feeds=norm_feeds, kafka=kafka, fetch=fetch, dedup=dedup, poll=poll,
                  feed_refresh_s=float(p.get("refresh_s", 300)), taxonomy_path=taxonomy,
                  taxonomy_reload_s=float(tagging.get("reload_every_s", 60)),
                  emit_duplicates=bool(d.get("emit_duplicates", True)),
                  feed_content_fallback=bool(f.get("feed_content_fallback", True)),
                  parallel_fetches=int(f.get("parallel_fetches", 4)), raw=doc)


def load_config(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"config {path} must be a mapping")
    return parse_config(doc, os.path.dirname(os.path.abspath(path)))
