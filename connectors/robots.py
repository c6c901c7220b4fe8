"""robots.txt for article fetches (RFC 9309), cached per host.

The standard library's ``urllib.robotparser`` takes the first matching rule and knows neither
``*`` nor ``$``; RFC 9309 says the longest match wins (Allow on a tie) and both wildcards are
part of the syntax, so the matcher is written here. What a fetch outcome means (RFC 9309 2.3.1):
a 4xx robots.txt means no restrictions; a 5xx, a network failure or a refused fetch means full
disallow, cached for a shorter time so the host is asked again soon.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import quote, unquote, urlsplit

MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB
_LINE = re.compile(r"^\s*([A-Za-z-]+)\s*:\s*(.*?)\s*$")


@dataclass
class Group:
    agents: list[str] = field(default_factory=list)
    rules: list[tuple[bool, str]] = field(default_factory=list)  # (allow, pattern)
    crawl_delay: Optional[float] = None


def _normalise_path(path: str) -> str:
    """Percent-encoding made uniform so ``/a%7Eb`` and ``/a~b`` compare equal."""
    return quote(unquote(path), safe="/?=&;:@$*!'(),~+-._")


def _pattern_regex(pattern: str) -> re.Pattern:
    anchored = pattern.endswith("$")
    body = _normalise_path(pattern[:-1] if anchored else pattern)
    return re.compile(".*".join(re.escape(part) for part in body.split("*")) + ("$" if anchored else ""))


class RobotsRules:
    """Parsed robots.txt; ``allowed(path, agent)`` answers for one product token."""

    def __init__(self, groups: list[Group], allow_all: bool = False, disallow_all: bool = False):
        self.groups = groups
        self.allow_all = allow_all
        self.disallow_all = disallow_all
        self._compiled: dict[str, re.Pattern] = {}

    @classmethod
    def parse(cls, text: str) -> "RobotsRules":
        groups: list[Group] = []
        current: Optional[Group] = None
        in_agents = False
        for raw in text.splitlines():
            m = _LINE.match(raw.split("#", 1)[0])
            if not m:
                continue
            key, value = m.group(1).lower(), m.group(2)
            if key == "user-agent":
                if not in_agents:
                    current = Group()
                    groups.append(current)
                    in_agents = True
                current.agents.append(value.split("/", 1)[0].strip().lower())
                continue
            if current is None:
                continue  # rules before any user-agent line belong to no group
            in_agents = False
            if key in ("allow", "disallow") and (value or key == "allow"):
                current.rules.append((key == "allow", value))
            elif key == "crawl-delay":
                try:
                    current.crawl_delay = float(value)
                except ValueError:
                    pass
        return cls(groups)

    def _group_for(self, agent: str) -> Optional[Group]:
        """RFC 9309 2.2.1: the groups naming the agent's product token, else the ``*`` groups."""
        token = agent.split("/", 1)[0].strip().lower()
        named = [g for g in self.groups if token and token in g.agents]
        chosen = named or [g for g in self.groups if "*" in g.agents]
        if not chosen:
            return None
        merged = Group(crawl_delay=next((g.crawl_delay for g in chosen if g.crawl_delay is not None), None))
        for g in chosen:
            merged.rules.extend(g.rules)
        return merged

    def allowed(self, path: str, agent: str) -> bool:
        if self.allow_all:
            return True
        if self.disallow_all:
            return False
        if path == "/robots.txt":
            return True
        group = self._group_for(agent)
        if group is None:
            return True
        target = _normalise_path(path or "/")
        best_len, best_allow = -1, True
        for allow, pattern in group.rules:
            if not pattern:
                continue
            regex = self._compiled.get(pattern)
            if regex is None:
                regex = self._compiled[pattern] = _pattern_regex(pattern)
            if regex.match(target):
                length = len(pattern)
                if length > best_len or (length == best_len and allow):
                    best_len, best_allow = length, allow
        return best_allow

    def crawl_delay(self, agent: str) -> Optional[float]:
        group = self._group_for(agent)
        return group.crawl_delay if group else None


ALLOW_ALL = RobotsRules([], allow_all=True)
DISALLOW_ALL = RobotsRules([], disallow_all=True)


class RobotsCache:
    """robots.txt rules per ``scheme://host:port``, fetched through the caller's safe fetcher.

    ``fetch(url)`` returns ``(status, body)`` or raises; the cache keeps at most ``max_hosts``
    entries, each for ``ttl`` seconds (``error_ttl`` for the full-disallow answer of a failure).
    One cache per process and user agent is shared by every Fetcher (:meth:`shared`).
    """

    _shared: dict[tuple, "RobotsCache"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, ttl: float = 3600.0, error_ttl: float = 600.0, max_hosts: int = 4096,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.max_hosts = max_hosts
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, RobotsRules]] = {}
        self._host_locks: dict[str, threading.Lock] = {}

    @classmethod
    def shared(cls, ttl: float) -> "RobotsCache":
        with cls._shared_lock:
            cache = cls._shared.get((ttl,))
            if cache is None:
                cache = cls._shared[(ttl,)] = cls(ttl=ttl)
            return cache

    def rules_for(self, url: str, fetch: Callable[[str], tuple[int, bytes]]) -> RobotsRules:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}".lower()
        with self._lock:
            hit = self._entries.get(origin)
            if hit and hit[0] > self.clock():
                return hit[1]
            host_lock = self._host_locks.setdefault(origin, threading.Lock())
        with host_lock:  # one robots.txt fetch per host at a time; the others wait for its answer
            with self._lock:
                hit = self._entries.get(origin)
                if hit and hit[0] > self.clock():
                    return hit[1]
            rules, ttl = self._load(origin + "/robots.txt", fetch)
            with self._lock:
                if len(self._entries) >= self.max_hosts:
                    oldest = min(self._entries, key=lambda k: self._entries[k][0])
                    self._entries.pop(oldest, None)
                    self._host_locks.pop(oldest, None)
                self._entries[origin] = (self.clock() + ttl, rules)
            return rules

    def _load(self, robots_url: str, fetch) -> tuple[RobotsRules, float]:
        try:
            status, body = fetch(robots_url)
        except Exception:  # unreachable: RFC 9309 says assume complete disallow
            return DISALLOW_ALL, self.error_ttl
        if status >= 500 or status == 429:
            return DISALLOW_ALL, self.error_ttl
        if status >= 400:
            return ALLOW_ALL, self.ttl
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        return RobotsRules.parse(text), self.ttl

    def allowed(self, url: str, agent: str, fetch: Callable[[str], tuple[int, bytes]]) -> bool:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self.rules_for(url, fetch).allowed(path, agent)
