"""Politeness per host: at most N requests in flight and a minimum delay between request starts.

Beam runs several DoFn instances in one worker process (one per bundle thread), each with its own
:class:`~connectors.fetch.Fetcher`; a limit per instance would multiply by the thread count. So
the limiter is per process: :meth:`HostLimiter.shared` returns one instance per setting, used by
every Fetcher in the process. Across worker processes or machines the limit is per process (a
job with W workers may send up to W x N concurrent requests to one host); the feed keying of the
streaming poller keeps each feed on one worker at a time.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator


class HostBusy(Exception):
    """No slot for this host within the allowed wait."""


class _Host:
    __slots__ = ("active", "next_start", "delay")

    def __init__(self, delay: float):
        self.active = 0
        self.next_start = 0.0
        self.delay = delay


class HostLimiter:
    _shared: dict[tuple, "HostLimiter"] = {}
    _shared_lock = threading.Lock()
    MAX_IDLE_HOSTS = 10_000

    def __init__(self, max_concurrent: int = 2, min_delay: float = 0.0, max_wait: float = 120.0):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.min_delay = min_delay
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self._hosts: dict[str, _Host] = {}

    @classmethod
    def shared(cls, max_concurrent: int, min_delay: float, max_wait: float) -> "HostLimiter":
        """The process-wide limiter for these settings (created on first use)."""
        key = (max_concurrent, min_delay, max_wait)
        with cls._shared_lock:
            limiter = cls._shared.get(key)
            if limiter is None:
                limiter = cls._shared[key] = cls(max_concurrent, min_delay, max_wait)
            return limiter

    def set_delay(self, host: str, seconds: float) -> None:
        """Raise the minimum delay for one host (e.g. to its robots.txt Crawl-delay)."""
        with self._cond:
            state = self._host(host)
            state.delay = max(self.min_delay, seconds)

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            if len(self._hosts) >= self.MAX_IDLE_HOSTS:
                now = time.monotonic()
                for name in [h for h, s in self._hosts.items() if not s.active and s.next_start < now]:
                    del self._hosts[name]
            state = self._hosts[host] = _Host(self.min_delay)
        return state

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of ``host``'s slots for the block; raise HostBusy after ``max_wait`` seconds."""
        deadline = time.monotonic() + self.max_wait
        with self._cond:
            state = self._host(host)
            while True:
                now = time.monotonic()
                if state.active < self.max_concurrent and now >= state.next_start:
                    break
                if now >= deadline:
                    raise HostBusy(f"no request slot for {host} within {self.max_wait:g} s")
                wait = deadline - now
                if state.active < self.max_concurrent:
                    wait = min(wait, state.next_start - now)
                self._cond.wait(wait)
            state.active += 1
            state.next_start = now + state.delay
        try:
            yield
        finally:
            with self._cond:
                state.active -= 1
                self._cond.notify_all()

    def in_flight(self, host: str) -> int:
        with self._cond:
            state = self._hosts.get(host)
            return state.active if state else 0
