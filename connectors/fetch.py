"""A safe HTTP fetcher for feeds and article pages.

The web is hostile: pages that never end or trickle a byte at a time, gzip bombs, redirect loops,
links into the cluster's own private network, DNS names that answer a public address to the check
and a private one to the connection. So every fetch here:

- resolves the host itself, refuses loopback, private, link-local (cloud metadata), multicast,
  reserved and other non-global addresses (also when embedded in IPv6: mapped, 6to4, Teredo,
  NAT64), and then connects to the very address it checked - the name is sent only as the Host
  header and TLS SNI, so a second DNS answer (rebinding) is never used; again on every redirect;
- has connect and read timeouts per socket operation and a total deadline enforced by a watchdog
  that shuts the socket down, so a server trickling bytes cannot hold a worker;
- caps the body on the wire and after decompression, decompressing itself in bounded steps so a
  gzip bomb stops at the cap without ever inflating past it;
- checks the content type for what is being fetched (``kind="feed"`` / ``"page"``) before reading;
- verifies TLS always (there is no switch to turn it off; ``ca_file`` adds an intranet CA);
- waits for a per-host slot (:mod:`connectors.hostlimit`) and, for pages, asks robots.txt
  (:mod:`connectors.robots`).

Hosts in ``allow_hosts`` (``host``, ``host:port`` or a CIDR such as ``10.0.0.0/8``) skip the
address check, for tests and intranets; the connection is still pinned to the resolved address.
Failures raise :class:`FetchError` with a short machine-readable ``kind`` and a one-line reason.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from connectors import charset
from connectors.hostlimit import HostBusy, HostLimiter
from connectors.robots import MAX_ROBOTS_BYTES, RobotsCache

DEFAULT_USER_AGENT = "news-ingest/0.1 (+https://github.com/news-ingest/news-ingest)"
REDIRECT_CODES = {301, 302, 303, 307, 308}
ACCEPT = {
    "feed": "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
            "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
    "page": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
    "robots": "text/plain, */*;q=0.5",
}
# Content types that cannot be what was asked for; refused before the body is read.
_NOT_A_FEED = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip",
               "application/msword", "application/vnd.", "application/wasm", "application/x-shockwave-flash")
_PAGE_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "192.0.0.192")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(Exception):
    """A fetch that produced no usable body. ``kind`` is stable, ``str()`` is for people.

    ``headers`` holds the response headers when there was a response (a 429's Retry-After).
    """

    def __init__(self, kind: str, reason: str, url: str, status: Optional[int] = None,
                 headers: Optional[Mapping[str, str]] = None):
        reason = " ".join(str(reason).split())  # one line, always
        super().__init__(f"{kind}: {reason} ({url})")
        self.kind = kind
        self.reason = reason
        self.url = url
        self.status = status
        self.headers = dict(headers or {})


@dataclass
class FetchResult:
    url: str  # the final URL after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)
    wire_bytes: int = 0
    address: Optional[str] = None  # the IP address the body came from

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def encoding(self) -> str:
        """The body's character encoding by :func:`connectors.charset.sniff`."""
        return charset.sniff(self.body, self.headers.get("content-type"))[0]

    def text(self) -> str:
        return charset.decode(self.body, self.headers.get("content-type"))[0]


@dataclass(frozen=True)
class FetchPolicy:
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # per socket read
    total_timeout: float = 30.0  # the whole fetch, redirects included
    max_bytes: int = 10 * 1024 * 1024  # after decompression
    max_wire_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_hosts: tuple[str, ...] = ()  # "host", "host:port" or a CIDR, exempt from the SSRF guard
    per_host_concurrency: int = 2  # requests in flight per host, per process
    per_host_min_delay: float = 0.5  # seconds between request starts to one host
    per_host_max_wait: float = 120.0  # give up (kind "host_busy") after waiting this long
    respect_robots: bool = True  # for kind="page" fetches
    robots_ttl: float = 3600.0
    ca_file: Optional[str] = None  # extra trust for intranet CAs; verification itself is always on


# ---------------------------------------------------------------------------------------------
# The address guard

def blocked_reason(ip: ipaddress._BaseAddress) -> Optional[str]:
    """Why ``ip`` must not be fetched from, or None if it is a public address."""
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates = [e for e in embedded if e is not None] + candidates  # name the embedded IPv4
    for addr in candidates:
        if addr in METADATA_ADDRESSES:
            return f"cloud metadata address {addr}"
        for test, label in ((addr.is_loopback, "loopback"), (addr.is_link_local, "link-local"),
                            (addr.is_multicast, "multicast"), (addr.is_unspecified, "unspecified"),
                            (addr.is_private, "private"), (addr.is_reserved, "reserved"),
                            (not addr.is_global, "non-global")):
            if test:
                return f"{label} address {addr}"
    return None


def _allowed(host: str, port: int, ip: Optional[ipaddress._BaseAddress], allow_hosts: Iterable[str]) -> bool:
    for entry in allow_hosts:
        entry = entry.strip().lower()
        if entry in (host, f"{host}:{port}"):
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def resolve(host: str, port: int) -> list[str]:
    """All addresses of ``host`` (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))


def resolve_checked(url: str, allow_hosts: Iterable[str] = (),
                    resolver: Callable[[str, int], Sequence[str]] = resolve) -> list[str]:
    """The addresses a fetch of ``url`` may connect to; raise FetchError if any is refused.

    One refused address refuses the name: a DNS answer mixing public and private addresses is
    the shape of a rebinding attack.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError("bad_url", f"scheme {parts.scheme or '(none)'!r} is not http or https", url)
    host = (parts.hostname or "").lower()
    if not host:
        raise FetchError("bad_url", "no host in URL", url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError("bad_url", "invalid port", url)
    allow_hosts = tuple(allow_hosts)
    by_name = _allowed(host, port, None, allow_hosts)
    try:
        addresses = list(resolver(host, port))
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("dns", f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}", url) from exc
    if not addresses:
        raise FetchError("dns", f"no address for {host}", url)
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if by_name or _allowed(host, port, ip, allow_hosts):
            continue
        reason = blocked_reason(ip)
        if reason:
            raise FetchError("ssrf_refused", f"{host} resolves to {reason}", url)
    return addresses


def check_public(url: str, allow_hosts: Iterable[str] = ()) -> None:
    """Raise FetchError unless ``url`` is http(s) and resolves only to allowed addresses."""
    resolve_checked(url, allow_hosts)


# ---------------------------------------------------------------------------------------------
# Bounded decompression

class _Inflater:
    """gzip (multi-member) or deflate (zlib-wrapped or raw) that never returns more than asked."""

    def __init__(self, coding: str):
        self.coding = coding
        self._new()
        self._first = True

    def _new(self):
        wbits = 16 + zlib.MAX_WBITS if self.coding == "gzip" else zlib.MAX_WBITS
        self._d = zlib.decompressobj(wbits)

    def inflate(self, data: bytes, limit: int) -> bytes:
        """Decompress ``data``; at most ``limit + 1`` bytes come out (one more means over)."""
        out = bytearray()
        while data and len(out) <= limit:
            try:
                out += self._d.decompress(data, limit + 1 - len(out))
            except zlib.error:
                if self.coding == "deflate" and self._first:  # servers send raw deflate too
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._first = False
                    continue
                raise
            self._first = False
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._d.eof and self._d.unused_data and self.coding == "gzip":
                data = self._d.unused_data
                self._new()
            else:
                data = b""
        return bytes(out)


def decompress_capped(data: bytes, coding: str, max_bytes: int, url: str = "") -> bytes:
    """Decompress a whole gzip/deflate body, refusing (kind ``too_large``) past ``max_bytes``."""
    try:
        out = _Inflater(coding).inflate(data, max_bytes)
    except zlib.error as exc:
        raise FetchError("decode", f"cannot decode {coding} body: {exc}", url) from exc
    if len(out) > max_bytes:
        raise FetchError("too_large", f"body exceeds {max_bytes} bytes after decompression", url)
    return out


def _codings(header: Optional[str], url: str) -> list[str]:
    codings = []
    for value in (header or "").lower().split(","):
        value = value.strip()
        if value in ("", "identity"):
            continue
        if value in ("gzip", "x-gzip"):
            codings.append("gzip")
        elif value == "deflate":
            codings.append("deflate")
        else:
            raise FetchError("decode", f"unsupported Content-Encoding {value!r}", url)
    return codings[::-1]  # the last applied is the first to undo


# ---------------------------------------------------------------------------------------------
# The watchdog: a hard deadline for the whole fetch

_current = threading.local()


class _Watch:
    """Shuts down the socket of the fetch's connection when the total deadline passes."""

    def __init__(self, seconds: float):
        self.conn: Optional[HTTPConnection] = None
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self):
        self.fired = True
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:  # the plain socket's shutdown: SSLSocket.shutdown would also drop the SSL object
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        self._outer = getattr(_current, "watch", None)  # a robots.txt fetch nests in a page fetch
        _current.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _current.watch = self._outer


def _note_connection(conn: HTTPConnection) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.conn = conn


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args, **kwargs):
        _note_connection(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args, **kwargs):
        _note_connection(self)
        return super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# ---------------------------------------------------------------------------------------------

def _content_type_refused(kind: Optional[str], content_type: str) -> bool:
    if not content_type or kind not in ("feed", "page"):
        return False
    if kind == "feed":
        return content_type.startswith(_NOT_A_FEED)
    return not content_type.startswith(_PAGE_TYPES)


class Fetcher:
    """Connection pools (keyed by the pinned address) per instance; create one per DoFn in ``setup``.

    The host limiter and the robots.txt cache are shared by every Fetcher of the process with the
    same settings, unless given explicitly.
    """

    def __init__(self, policy: FetchPolicy = FetchPolicy(), limiter: Optional[HostLimiter] = None,
                 robots: Optional[RobotsCache] = None,
                 resolver: Callable[[str, int], Sequence[str]] = resolve):
        self.policy = policy
        self.resolver = resolver
        self.limiter = limiter or HostLimiter.shared(policy.per_host_concurrency, policy.per_host_min_delay,
                                                     policy.per_host_max_wait)
        self.robots = robots or RobotsCache.shared(policy.robots_ttl)
        self._pool = urllib3.PoolManager(num_pools=64, maxsize=max(2, policy.per_host_concurrency),
                                         cert_reqs="CERT_REQUIRED", ca_certs=policy.ca_file, retries=False)
        self._pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def get(self, url: str, headers: Optional[Mapping[str, str]] = None, kind: Optional[str] = None,
            max_bytes: Optional[int] = None) -> FetchResult:
        """GET ``url`` safely. ``kind`` ("feed", "page", "robots") sets Accept, the content-type
        check and, for pages, robots.txt. A 304 comes back as a result with an empty body."""
        policy = self.policy
        request_headers = {"User-Agent": policy.user_agent, "Accept-Encoding": "gzip, deflate"}
        if kind in ACCEPT:
            request_headers["Accept"] = ACCEPT[kind]
        request_headers.update(headers or {})
        deadline = time.monotonic() + policy.total_timeout
        redirects: list[str] = []
        current = url
        with _Watch(policy.total_timeout) as watch:
            while True:
                if kind == "page" and policy.respect_robots:
                    self._check_robots(current)
                addresses = resolve_checked(current, policy.allow_hosts, self.resolver)
                result = self._one_hop(current, addresses, request_headers, kind, deadline, watch,
                                       max_bytes or policy.max_bytes)
                if result.status not in REDIRECT_CODES:
                    result.redirects = redirects
                    return result
                location = result.headers.get("location")
                if not location:
                    raise FetchError("http_status", f"HTTP {result.status} without Location", current, result.status)
                if len(redirects) >= policy.max_redirects:
                    raise FetchError("too_many_redirects", f"more than {policy.max_redirects} redirects", url)
                redirects.append(current)
                current = urljoin(current, location.strip())
                if current in redirects:
                    raise FetchError("redirect_loop", f"redirect loop back to {current}", url)

    def _one_hop(self, url: str, addresses: list[str], headers: dict, kind: Optional[str], deadline: float,
                 watch: _Watch, max_bytes: int) -> FetchResult:
        parts = urlsplit(url)
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        hop_headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1]}
        try:
            with self.limiter.slot(f"{host}:{port}"):
                resp, address = self._connect(parts.scheme, host, port, path, hop_headers, addresses, deadline, watch, url)
                try:
                    result = self._finish(resp, url, address, kind, deadline, watch, max_bytes)
                except BaseException:
                    resp.close()  # an unread or broken body: never hand this connection out again
                    raise
                finally:
                    if resp.status in REDIRECT_CODES:  # its body is never read: do not reuse
                        resp.close()
                    resp.release_conn()
                return result
        except HostBusy as exc:
            raise FetchError("host_busy", str(exc), url) from exc

    def _connect(self, scheme, host, port, path, headers, addresses, deadline, watch, url):
        policy = self.policy
        last_error: Optional[BaseException] = None
        for address in addresses[:3]:  # the next address only when one cannot be connected to
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError("timeout", f"total time over {policy.total_timeout:g} s", url)
            pool_kwargs = {"server_hostname": host, "assert_hostname": host} if scheme == "https" else {}
            pool = self._pool.connection_from_host(address, port, scheme, pool_kwargs=pool_kwargs)
            timeout = urllib3.Timeout(connect=min(policy.connect_timeout, remaining),
                                      read=min(policy.read_timeout, remaining))
            try:
                resp = pool.urlopen("GET", path, headers=headers, redirect=False, retries=False, timeout=timeout,
                                    preload_content=False, decode_content=False, assert_same_host=False)
                return resp, address
            except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
                last_error = exc
                continue
            except urllib3.exceptions.MaxRetryError as exc:
                if isinstance(exc.reason, (urllib3.exceptions.NewConnectionError,
                                           urllib3.exceptions.ConnectTimeoutError)):
                    last_error = exc.reason
                    continue
                raise _classify(exc.reason or exc, url, watch) from exc
            except urllib3.exceptions.HTTPError as exc:
                raise _classify(exc, url, watch) from exc
        raise _classify(last_error, url, watch)

    def _finish(self, resp, url, address, kind, deadline, watch, max_bytes) -> FetchResult:
        headers = {k.lower(): v for k, v in resp.headers.items()}
        status = resp.status
        if status in REDIRECT_CODES or status == 304:
            return FetchResult(url, status, headers, b"", address=address)
        if status >= 400:
            raise FetchError("http_status", f"HTTP {status} {resp.reason or ''}".strip(), url, status, headers)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if _content_type_refused(kind, content_type):
            raise FetchError("content_type", f"{content_type} is not a {kind}", url, status, headers)
        body, wire = self._read_capped(resp, url, headers, deadline, watch, max_bytes)
        return FetchResult(url, status, headers, body, wire_bytes=wire, address=address)

    def _read_capped(self, resp, url, headers, deadline, watch, max_bytes) -> tuple[bytes, int]:
        policy = self.policy
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > policy.max_wire_bytes:
            raise FetchError("too_large", f"Content-Length {declared} exceeds {policy.max_wire_bytes} bytes", url)
        codings = _codings(headers.get("content-encoding"), url)
        inflaters = [_Inflater(c) for c in codings]
        out = bytearray()
        wire = 0
        try:
            for chunk in resp.stream(64 * 1024, decode_content=False):
                wire += len(chunk)
                if wire > policy.max_wire_bytes:
                    raise FetchError("too_large", f"body exceeds {policy.max_wire_bytes} bytes on the wire", url)
                for inflater in inflaters:
                    chunk = inflater.inflate(chunk, max_bytes - len(out))
                out += chunk
                if len(out) > max_bytes:
                    raise FetchError("too_large", f"body exceeds {max_bytes} bytes after decompression", url)
                if time.monotonic() > deadline:
                    raise FetchError("timeout", f"total time over {policy.total_timeout:g} s", url)
        except zlib.error as exc:
            raise FetchError("decode", f"cannot decode {'+'.join(codings)} body: {exc}", url) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _classify(exc, url, watch) from exc
        if watch.fired:
            raise FetchError("timeout", f"total time over {policy.total_timeout:g} s", url)
        return bytes(out), wire

    def _check_robots(self, url: str) -> None:
        agent = self.policy.user_agent
        rules = self.robots.rules_for(url, self._fetch_robots)
        delay = rules.crawl_delay(agent)
        if delay:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self.limiter.set_delay(f"{(parts.hostname or '').lower()}:{port}", min(delay, 60.0))
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not rules.allowed(path, agent):
            raise FetchError("robots", "disallowed by robots.txt", url)

    def _fetch_robots(self, robots_url: str) -> tuple[int, bytes]:
        try:
            result = self.get(robots_url, kind="robots", max_bytes=MAX_ROBOTS_BYTES * 2)
        except FetchError as exc:
            if exc.kind == "http_status" and exc.status:
                return exc.status, b""
            raise
        return result.status, result.body


def _classify(exc: Optional[BaseException], url: str, watch: Optional[_Watch] = None) -> FetchError:
    if isinstance(exc, FetchError):
        return exc
    if watch is not None and watch.fired:
        return FetchError("timeout", "total time limit reached", url)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return FetchError("timeout", "read timed out", url)
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return FetchError("timeout", "connect timed out", url)
    if isinstance(exc, (urllib3.exceptions.TimeoutError, socket.timeout)):
        return FetchError("timeout", f"timed out ({type(exc).__name__})", url)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return FetchError("tls", f"TLS error: {exc}", url)
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return FetchError("decode", f"cannot decode body: {exc}", url)
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return FetchError("connect", "connection refused or unreachable", url)
    return FetchError("network", f"{type(exc).__name__}: {exc}", url)
