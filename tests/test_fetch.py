"""The safe fetcher against a real HTTP server on 127.0.0.1 (allow-listed except where refusal is tested)."""
from __future__ import annotations

import gzip
import http.server
import ipaddress
import shutil
import ssl
import subprocess
import threading
import time
import zlib

import pytest

from connectors.fetch import FetchError, Fetcher, FetchPolicy, blocked_reason, decompress_capped, resolve_checked
from connectors.hostlimit import HostLimiter
from connectors.robots import RobotsCache, RobotsRules

LOCAL = ("127.0.0.1",)


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 whose routes are plain functions ``handler(request) -> reply``.

    A reply is ``(status, headers, body)``, or a callable taking the raw ``wfile`` for replies that
    stall or trickle. Every request is recorded (path, headers, start time) and the highest number
    of requests in flight at once is kept.
    """

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "at": time.monotonic()})
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    route = outer.routes.get(self.path.split("?")[0])
                    reply = route(self) if route else (404, {}, b"not found")
                    if callable(reply):
                        reply(self)
                        return
                    status, headers, body = reply
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        class QuietServer(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that give up on purpose (timeouts, caps) reset connections

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_port
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"].split("?")[0] == path]

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def local_policy(**overrides) -> FetchPolicy:
    settings = dict(allow_hosts=LOCAL, per_host_min_delay=0.0, per_host_concurrency=4, connect_timeout=2.0,
                    read_timeout=2.0, total_timeout=5.0)
    settings.update(overrides)
    return FetchPolicy(**settings)


def fetcher(**overrides) -> Fetcher:
    """A Fetcher with its own limiter and robots cache, so tests do not share politeness state."""
    policy = local_policy(**overrides)
    return Fetcher(policy, limiter=HostLimiter(policy.per_host_concurrency, policy.per_host_min_delay, 10.0),
                   robots=RobotsCache())


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


RSS = b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title></channel></rss>"


def test_plain_and_gzip_bodies(server):
    server.routes["/plain"] = lambda r: (200, {"Content-Type": "application/rss+xml"}, RSS)
    server.routes["/gz"] = lambda r: (200, {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"},
                                      gzip.compress(RSS))
    server.routes["/deflate"] = lambda r: (200, {"Content-Encoding": "deflate"}, zlib.compress(RSS))
    f = fetcher()
    for path in ("/plain", "/gz", "/deflate"):
        result = f.get(server.url(path), kind="feed")
        assert result.status == 200 and result.body == RSS
        assert result.address == "127.0.0.1"
    assert server.hits("/gz")[0]["headers"]["User-Agent"].startswith("news-ingest/")


def test_configurable_user_agent(server):
    server.routes["/ua"] = lambda r: (200, {}, b"ok")
    fetcher(user_agent="ExampleBot/2.0 (+https://example.org/bot)").get(server.url("/ua"))
    assert server.hits("/ua")[0]["headers"]["User-Agent"] == "ExampleBot/2.0 (+https://example.org/bot)"


def test_loopback_refused_without_allow_list(server):
    server.routes["/feed"] = lambda r: (200, {}, RSS)
    with pytest.raises(FetchError) as err:
        Fetcher(FetchPolicy(per_host_min_delay=0.0)).get(server.url("/feed"))
    assert err.value.kind == "ssrf_refused" and "loopback" in err.value.reason
    assert not server.hits("/feed"), "the refused request must never reach the server"


def test_redirect_to_loopback_refused(server):
    """The first hop is allowed by name (localhost); the redirect's target, 127.0.0.1, is not."""
    server.routes["/start"] = lambda r: (302, {"Location": server.url("/secret")}, b"")
    server.routes["/secret"] = lambda r: (200, {}, b"internal")
    f = fetcher(allow_hosts=(f"localhost:{server.port}",))
    with pytest.raises(FetchError) as err:
        f.get(f"http://localhost:{server.port}/start")
    assert err.value.kind == "ssrf_refused" and "127.0.0.1" in err.value.reason
    assert server.hits("/start") and not server.hits("/secret")


@pytest.mark.parametrize("target,expected", [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://10.0.0.1/", "private"),
    ("file:///etc/passwd", "is not http or https"),
])
def test_redirect_to_forbidden_targets_refused(server, target, expected):
    server.routes["/go"] = lambda r: (301, {"Location": target}, b"")
    with pytest.raises(FetchError) as err:
        fetcher().get(server.url("/go"))
    assert expected in err.value.reason


def test_redirects_followed_limited_and_loops_caught(server):
    server.routes["/a"] = lambda r: (301, {"Location": "/b"}, b"")
    server.routes["/b"] = lambda r: (307, {"Location": server.url("/c")}, b"")
    server.routes["/c"] = lambda r: (200, {}, b"done")
    server.routes["/loop"] = lambda r: (302, {"Location": "/loop2"}, b"")
    server.routes["/loop2"] = lambda r: (302, {"Location": "/loop"}, b"")
    result = fetcher().get(server.url("/a"))
    assert result.body == b"done" and result.url == server.url("/c") and len(result.redirects) == 2
    with pytest.raises(FetchError) as err:
        fetcher(max_redirects=1).get(server.url("/a"))
    assert err.value.kind == "too_many_redirects"
    with pytest.raises(FetchError) as err:
        fetcher().get(server.url("/loop"))
    assert err.value.kind == "redirect_loop"


@pytest.mark.parametrize("address,label", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("100.100.100.200", "cloud metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"), ("100.64.0.1", "non-global"),
    ("64:ff9b::a00:1", "private"), ("2002:7f00:1::", "loopback"), ("fd12:3456::1", "private"),
])
def test_non_public_addresses_blocked(address, label):
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason and label in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"])
def test_public_addresses_pass(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_check_happens_after_dns_resolution():
    """A public-looking name that resolves privately is refused; a mixed answer too (rebinding)."""
    with pytest.raises(FetchError) as err:
        resolve_checked("http://news.example/feed", resolver=lambda h, p: ["10.0.0.7"])
    assert err.value.kind == "ssrf_refused"
    with pytest.raises(FetchError):
        resolve_checked("http://news.example/feed", resolver=lambda h, p: ["93.184.216.34", "127.0.0.1"])
    assert resolve_checked("http://news.example/", resolver=lambda h, p: ["93.184.216.34"]) == ["93.184.216.34"]
    assert resolve_checked("http://intranet.example/", ("10.0.0.0/8",), resolver=lambda h, p: ["10.2.3.4"])


def test_connection_pinned_to_the_checked_address(server):
    """The resolver is asked once per hop; the connection goes to that address, the name only in Host."""
    server.routes["/feed"] = lambda r: (200, {}, RSS)
    answers = []

    def resolver(host, port):
        answers.append(host)
        return ["127.0.0.1"]

    policy = local_policy(allow_hosts=("news.example",))
    f = Fetcher(policy, limiter=HostLimiter(2, 0.0), robots=RobotsCache(), resolver=resolver)
    result = f.get(f"http://news.example:{server.port}/feed")
    assert result.body == RSS and answers == ["news.example"]
    assert server.hits("/feed")[0]["headers"]["Host"] == f"news.example:{server.port}"


def test_oversize_body_refused(server):
    big = b"x" * (300 * 1024)
    server.routes["/declared"] = lambda r: (200, {}, big)

    def undeclared(handler):  # chunked, so no Content-Length to refuse up front
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(30):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(big) // 10, big[: len(big) // 10]))
        handler.wfile.write(b"0\r\n\r\n")

    server.routes["/chunked"] = lambda r: undeclared
    f = fetcher(max_bytes=100 * 1024, max_wire_bytes=100 * 1024)
    for path in ("/declared", "/chunked"):
        with pytest.raises(FetchError) as err:
            f.get(server.url(path))
        assert err.value.kind == "too_large", path


def test_gzip_bomb_stops_at_the_cap(server):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # ~64 KB on the wire, 64 MB inflated
    server.routes["/bomb"] = lambda r: (200, {"Content-Encoding": "gzip", "Content-Type": "application/xml"}, bomb)
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetcher(max_bytes=1024 * 1024).get(server.url("/bomb"), kind="feed")
    assert err.value.kind == "too_large" and "decompression" in err.value.reason
    assert time.monotonic() - started < 5
    with pytest.raises(FetchError) as err:  # the same rule for a .gz body handed over whole
        decompress_capped(bomb, "gzip", 1024 * 1024)
    assert err.value.kind == "too_large"


def test_stalling_servers_time_out(server):
    def silent(handler):
        time.sleep(3)

    def headers_then_silence(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"<rss")
        handler.wfile.flush()
        time.sleep(3)

    def trickle(handler):  # a byte every 0.2 s: each read is quick, the whole never ends
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.2)

    server.routes["/silent"] = lambda r: silent
    server.routes["/half"] = lambda r: headers_then_silence
    server.routes["/trickle"] = lambda r: trickle
    f = fetcher(read_timeout=0.5, total_timeout=1.5)
    for path in ("/silent", "/half", "/trickle"):
        started = time.monotonic()
        with pytest.raises(FetchError) as err:
            f.get(server.url(path))
        elapsed = time.monotonic() - started
        assert err.value.kind == "timeout", (path, err.value)
        assert elapsed < 2.5, (path, elapsed)


def test_content_type_checked_before_reading(server):
    server.routes["/img"] = lambda r: (200, {"Content-Type": "image/png"}, b"\x89PNG" + b"0" * 100)
    server.routes["/pdf"] = lambda r: (200, {"Content-Type": "application/pdf"}, b"%PDF")
    server.routes["/page"] = lambda r: (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html></html>")
    f = fetcher()
    with pytest.raises(FetchError) as err:
        f.get(server.url("/img"), kind="feed")
    assert err.value.kind == "content_type"
    with pytest.raises(FetchError) as err:
        f.get(server.url("/pdf"), kind="page")
    assert err.value.kind == "content_type"
    assert f.get(server.url("/page"), kind="page").status == 200
    assert f.get(server.url("/pdf")).body == b"%PDF"  # no kind, no check


def test_error_status_keeps_headers(server):
    server.routes["/busy"] = lambda r: (503, {"Retry-After": "120"}, b"")
    with pytest.raises(FetchError) as err:
        fetcher().get(server.url("/busy"))
    assert err.value.kind == "http_status" and err.value.status == 503
    assert err.value.headers["retry-after"] == "120"


@pytest.mark.parametrize("body,content_type,expected", [
    ("Zürich café".encode("utf-8"), "text/html; charset=iso-8859-1", "Zürich café"),  # wrong: says Latin-1
    ("Zürich café".encode("latin-1"), "text/html; charset=utf-8", "Zürich café"),  # wrong: says UTF-8
    ("Zürich café".encode("latin-1"), "text/html", "Zürich café"),  # missing
    ('<meta charset="windows-1251"><p>Киев'.encode("cp1251"), "text/html", '<meta charset="windows-1251"><p>Киев'),
    ("\ufeffKyiv – Київ".encode("utf-16"), "text/html; charset=iso-8859-1", "Kyiv – Київ"),  # BOM wins
])
def test_page_text_charset(server, body, content_type, expected):
    server.routes["/p"] = lambda r: (200, {"Content-Type": content_type}, body)
    assert fetcher().get(server.url("/p")).text() == expected


def test_per_host_concurrency_and_delay(server):
    def slow(r):
        time.sleep(0.3)
        return 200, {}, b"ok"

    server.routes["/slow"] = slow
    policy = local_policy(per_host_concurrency=2)
    limiter = HostLimiter(max_concurrent=2, min_delay=0.0, max_wait=10)
    f = Fetcher(policy, limiter=limiter, robots=RobotsCache())
    threads = [threading.Thread(target=f.get, args=(server.url(f"/slow?{i}"),)) for i in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.hits("/slow")) == 6
    assert server.max_in_flight == 2
    assert time.monotonic() - started >= 0.85  # three waves of two

    spaced = HostLimiter(max_concurrent=4, min_delay=0.2, max_wait=10)
    f = Fetcher(policy, limiter=spaced, robots=RobotsCache())
    server.routes["/quick"] = lambda r: (200, {}, b"ok")
    for i in range(4):
        f.get(server.url(f"/quick?{i}"))
    starts = [r["at"] for r in server.hits("/quick")]
    assert all(b - a >= 0.18 for a, b in zip(starts, starts[1:]))


def test_host_busy_after_max_wait():
    limiter = HostLimiter(max_concurrent=1, min_delay=0.0, max_wait=0.2)
    from connectors.hostlimit import HostBusy

    with limiter.slot("a:80"):
        with pytest.raises(HostBusy):
            with limiter.slot("a:80"):
                pass
        with limiter.slot("b:80"):  # another host is not affected
            assert limiter.in_flight("b:80") == 1


def test_robots_txt_for_pages(server):
    server.routes["/robots.txt"] = lambda r: (200, {"Content-Type": "text/plain"},
                                              b"User-agent: *\nDisallow: /private\nAllow: /private/ok\n")
    html = {"Content-Type": "text/html"}
    for path in ("/private/secret", "/private/ok", "/public"):
        server.routes[path] = lambda r: (200, html, b"<html>x</html>")
    f = fetcher()
    with pytest.raises(FetchError) as err:
        f.get(server.url("/private/secret"), kind="page")
    assert err.value.kind == "robots"
    assert f.get(server.url("/private/ok"), kind="page").status == 200
    assert f.get(server.url("/public"), kind="page").status == 200
    assert f.get(server.url("/private/secret"), kind="feed").status == 200  # feeds do not ask robots.txt
    assert len(server.hits("/robots.txt")) == 1  # cached per host
    assert not server.hits("/private/secret")[1:]  # only the feed fetch reached it
    assert fetcher(respect_robots=False).get(server.url("/private/secret"), kind="page").status == 200


def test_robots_txt_failures(server):
    server.routes["/page"] = lambda r: (200, {"Content-Type": "text/html"}, b"<html></html>")
    server.routes["/robots.txt"] = lambda r: (404, {}, b"")
    assert fetcher().get(server.url("/page"), kind="page").status == 200
    server.routes["/robots.txt"] = lambda r: (503, {}, b"")
    with pytest.raises(FetchError) as err:  # RFC 9309: an unreachable robots.txt means full disallow
        fetcher().get(server.url("/page"), kind="page")
    assert err.value.kind == "robots"


def test_robots_rules_rfc9309():
    rules = RobotsRules.parse(
        "User-agent: news-ingest\nDisallow: /*.pdf$\nDisallow: /drafts/\nAllow: /drafts/public\nCrawl-delay: 2\n\n"
        "User-agent: *\nDisallow: /\n"
    )
    agent = "news-ingest/0.1 (+https://example.org)"
    assert rules.allowed("/news/story.html", agent)
    assert not rules.allowed("/files/report.pdf", agent)
    assert rules.allowed("/files/report.pdf?download=1", agent)  # $ anchors the end
    assert not rules.allowed("/drafts/x", agent)
    assert rules.allowed("/drafts/public/x", agent)  # the longer rule wins
    assert not rules.allowed("/news/story.html", "OtherBot/1.0")
    assert rules.crawl_delay(agent) == 2
    assert RobotsRules.parse("User-agent: *\nDisallow:\n").allowed("/anything", agent)


def _self_signed(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_verification_always_on(server, tmp_path):
    cert, key = _self_signed(tmp_path)
    server.routes["/feed"] = lambda r: (200, {}, RSS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    url = f"https://localhost:{server.port}/feed"
    with pytest.raises(FetchError) as err:
        fetcher(allow_hosts=("localhost",)).get(url)
    assert err.value.kind == "tls"
    assert fetcher(allow_hosts=("localhost",), ca_file=cert).get(url).body == RSS  # trusted CA: same checks pass


def test_fetch_article_keeps_input_order_timestamps_and_routes_failures():
    """Pages fetched in parallel leave in input order, each with its own input's timestamp."""
    import random as _random
    import time as _time

    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms.window import TimestampedValue

    from pipelines.ingest import DEAD, FetchArticle

    class Stub(FetchArticle):
        def _fetch(self, entry):
            _time.sleep(_random.random() / 50)
            if entry["link"].endswith("bad"):
                return entry, None, "t", FetchError("http_status", "HTTP 500", entry["link"], 500)
            return entry, type("R", (), {"url": entry["link"], "body": b"x"})(), "t", None

    entries = [{"link": f"http://h/{i}" + ("bad" if i == 3 else ""), "feed_url": "f"} for i in range(12)]
    with TestPipeline() as p:
        out = (p | beam.Create([TimestampedValue(e, i) for i, e in enumerate(entries)])
               | beam.ParDo(Stub(FetchPolicy(), parallel=4)).with_outputs(DEAD, main="pages"))
        stamped = out.pages | beam.Map(lambda page, ts=beam.DoFn.TimestampParam: (page["url"], int(ts.micros // 10**6)))
        assert_that(stamped, equal_to([(e["link"], i) for i, e in enumerate(entries) if i != 3]), label="pages")
        assert_that(out[DEAD] | beam.Map(lambda d: d["input_ref"]), equal_to(["http://h/3bad"]), label="dead")
