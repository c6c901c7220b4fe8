"""A safe HTTP fetcher for feeds and article pages.

The web is hostile: pages that never end, gzip bombs, redirect loops, links into the cluster's own
private network. Every fetch here has connect/read/total timeouts, a size cap counted on the wire
and after decompression, a redirect limit re-checked hop by hop, TLS verification on, and an SSRF
guard that refuses non-public addresses after DNS resolution unless the host is allow-listed.
Failures raise :class:`FetchError` with a short machine-readable ``kind`` and a human reason.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional
from urllib.parse import urljoin, urlsplit

import urllib3

DEFAULT_USER_AGENT = "news-ingest/0.1 (+https://github.com/news-ingest/news-ingest)"
REDIRECT_CODES = {301, 302, 303, 307, 308}


class FetchError(Exception):
    """A fetch that produced no usable body. ``kind`` is stable, ``str()`` is for people."""

    def __init__(self, kind: str, reason: str, url: str, status: Optional[int] = None):
        super().__init__(f"{kind}: {reason} ({url})")
        self.kind = kind
        self.reason = reason
        self.url = url
        self.status = status


@dataclass
class FetchResult:
    url: str  # the final URL after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class FetchPolicy:
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024  # after decompression
    max_wire_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_hosts: tuple[str, ...] = ()  # "host" or "host:port" exempt from the SSRF guard


def _blocked_address(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_public(url: str, allow_hosts: Iterable[str] = ()) -> None:
    """Raise FetchError unless ``url`` is http(s) and resolves only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError("bad_url", f"scheme {parts.scheme or '(none)'!r} is not http or https", url)
    host = (parts.hostname or "").lower()
    if not host:
        raise FetchError("bad_url", "no host in URL", url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = {h.lower() for h in allow_hosts}
    if host in allowed or f"{host}:{port}" in allowed:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError("dns", f"cannot resolve {host}: {exc.strerror}", url) from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if _blocked_address(ip):
            raise FetchError("ssrf_refused", f"{host} resolves to non-public address {ip}", url)


class Fetcher:
    """One connection pool per instance; create one per DoFn in ``setup``."""

    def __init__(self, policy: FetchPolicy = FetchPolicy()):
        self.policy = policy
        self._pool = urllib3.PoolManager(
            num_pools=50,
            maxsize=4,
            cert_reqs="CERT_REQUIRED",
            retries=False,
            timeout=urllib3.Timeout(connect=policy.connect_timeout, read=policy.read_timeout),
        )

    def get(self, url: str, headers: Optional[Mapping[str, str]] = None) -> FetchResult:
        policy = self.policy
        request_headers = {
            "User-Agent": policy.user_agent,
            "Accept-Encoding": "gzip, deflate",
            **(headers or {}),
        }
        deadline = time.monotonic() + policy.total_timeout
        redirects: list[str] = []
        current = url
        while True:
            check_public(current, policy.allow_hosts)
            try:
                resp = self._pool.request(
                    "GET", current, headers=request_headers, redirect=False, preload_content=False
                )
            except urllib3.exceptions.MaxRetryError as exc:
                raise _classify(exc.reason or exc, current) from exc
            except urllib3.exceptions.HTTPError as exc:
                raise _classify(exc, current) from exc
            try:
                if resp.status in REDIRECT_CODES:
                    location = resp.headers.get("location")
                    if not location:
                        raise FetchError("http_status", f"HTTP {resp.status} without Location", current, resp.status)
                    if len(redirects) >= policy.max_redirects:
                        raise FetchError("too_many_redirects", f"more than {policy.max_redirects} redirects", url)
                    redirects.append(current)
                    current = urljoin(current, location)
                    if current in redirects:
                        raise FetchError("redirect_loop", f"redirect loop back to {current}", url)
                    continue
                result_headers = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status == 304:
                    return FetchResult(current, 304, result_headers, b"", redirects)
                if resp.status >= 400:
                    raise FetchError("http_status", f"HTTP {resp.status} {resp.reason or ''}".strip(), current, resp.status)
                body = self._read_capped(resp, current, deadline)
                return FetchResult(current, resp.status, result_headers, body, redirects)
            finally:
                resp.release_conn()

    def _read_capped(self, resp, url: str, deadline: float) -> bytes:
        policy = self.policy
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > policy.max_wire_bytes:
            raise FetchError("too_large", f"Content-Length {declared} exceeds {policy.max_wire_bytes} bytes", url)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.stream(64 * 1024, decode_content=True):
                size += len(chunk)
                if size > policy.max_bytes:
                    raise FetchError("too_large", f"body exceeds {policy.max_bytes} bytes after decoding", url)
                if resp.tell() > policy.max_wire_bytes:
                    raise FetchError("too_large", f"body exceeds {policy.max_wire_bytes} bytes on the wire", url)
                if time.monotonic() > deadline:
                    raise FetchError("timeout", f"total time over {policy.total_timeout:g} s", url)
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError as exc:
            raise _classify(exc, url) from exc
        return b"".join(chunks)


def _classify(exc: BaseException, url: str) -> FetchError:
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, (urllib3.exceptions.TimeoutError, socket.timeout)):
        return FetchError("timeout", f"timed out ({type(exc).__name__})", url)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return FetchError("tls", f"TLS error: {exc}", url)
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return FetchError("decode", f"cannot decode body: {exc}", url)
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return FetchError("connect", "connection refused or unreachable", url)
    return FetchError("network", f"{type(exc).__name__}: {exc}", url)
