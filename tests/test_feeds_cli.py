"""``newsingest feed FILE|URL [--allow-host HOST[:PORT]]``: JSONL out, one-line reasons and a non-zero exit on failure."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import time

import pytest

from connectors import fetch
from pipelines.cli import main
from tests.test_fetch import ScriptedServer
from tests.test_feeds import REALWORLD
from tests.test_polling import rss


@pytest.fixture
def server():
    with ScriptedServer() as s:
        s.routes["/feed"] = lambda r: (200, {"Content-Type": "application/rss+xml"}, rss("a", "b"))
        yield s


def run(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["feed", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_feed_from_file(capsys):
    code, entries, err = run(capsys, str(REALWORLD / "nhs_feed.rss"))
    assert code == 0 and len(entries) == 2 and not err
    assert all(e["link"].startswith("http") and e["entry_id"] for e in entries)


def test_feed_from_url_needs_allow_host(server, capsys):
    code, entries, err = run(capsys, server.url("/feed"), "--allow-host", f"127.0.0.1:{server.port}")
    assert code == 0 and [e["title"] for e in entries] == ["a", "b"]
    code, entries, err = run(capsys, server.url("/feed"))
    assert code != 0 and entries == []
    assert err.count("\n") == 1 and "ssrf_refused" in err and "loopback" in err
    assert len(server.hits("/feed")) == 1


@pytest.mark.parametrize("route,expected", [
    (lambda r: (404, {}, b""), "http_status"),
    (lambda r: (200, {"Content-Length": str(50 * 1024 * 1024)}, b""), "too_large"),
    (lambda r: (200, {"Content-Type": "text/html"}, b"<html><body>no feed</body></html>"), "not a feed"),
])
def test_failures_print_one_line_and_exit_non_zero(server, capsys, route, expected):
    server.routes["/bad"] = route
    code, entries, err = run(capsys, server.url("/bad"), "--allow-host", "127.0.0.1")
    assert code != 0 and entries == [] and err.count("\n") == 1 and expected in err


def test_timeout_prints_one_line(server, capsys, monkeypatch):
    server.routes["/stall"] = lambda r: (lambda handler: time.sleep(2))
    monkeypatch.setattr(fetch, "FetchPolicy", functools.partial(fetch.FetchPolicy, read_timeout=0.3, total_timeout=1))
    code, entries, err = run(capsys, server.url("/stall"), "--allow-host", "127.0.0.1")
    assert code != 0 and err.count("\n") == 1 and "timeout" in err


def test_missing_file(capsys):
    code, entries, err = run(capsys, "/nonexistent/feed.xml")
    assert code != 0 and err.count("\n") == 1


def test_console_script_exit_code(server):
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "feed", server.url("/feed")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("newsingest feed: ssrf_refused")
