"""The demo: the whole job on the bundled sample, against a local Kafka it starts itself.

``SampleServer`` serves ``examples/site`` on loopback, writing its own base URL into feeds and
pages (``{{BASE_URL}}``) and answering ``/status/<code>/...`` with that HTTP status, so the sample
holds a failing page without a failing server. The tests use the same server.
"""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
_TYPES = {".xml": "application/rss+xml; charset=utf-8", ".atom": "application/atom+xml; charset=utf-8",
          ".json": "application/feed+json; charset=utf-8", ".html": "text/html; charset=utf-8"}


class SampleServer:
    """A threaded HTTP server on 127.0.0.1 for a directory of feeds and pages."""

    def __init__(self, root: Path = EXAMPLES / "site", port: int = 0):
        self.root = Path(root)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as news sites serve: every response has a length
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stalls

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                parts = path.strip("/").split("/")
                if len(parts) >= 2 and parts[0] == "status" and parts[1].isdigit():
                    code = int(parts[1])
                    body = f"<html><body><h1>{code}</h1></body></html>".encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                file = (server.root / path.lstrip("/")).resolve()
                if server.root.resolve() not in file.parents or not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_bytes().replace(b"{{BASE_URL}}", server.base_url.encode())
                self.send_response(200)
                self.send_header("Content-Type", _TYPES.get(file.suffix, "application/octet-stream"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "SampleServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_local_kafka(port: int) -> None:
    """Start (or find running) the single-node broker of deploy/kafka on ``port``."""
    subprocess.run(["bash", str(KAFKA_SCRIPT), "start", "--port", str(port)], check=True)


def run_demo(port: int = 9092, beam_args: Sequence[str] = ()) -> int:
    from connectors.kafka_admin import KafkaUnavailable
    from pipelines.cli import print_summary, run_job
    from pipelines.config import ConfigError

    try:
        start_local_kafka(port)
    except subprocess.CalledProcessError as exc:
        print(f"newsingest demo: the local Kafka did not start (exit {exc.returncode}); see deploy/kafka/.run/kafka.log",
              file=sys.stderr)
        return 2
    os.environ["KAFKA_BOOTSTRAP"] = f"127.0.0.1:{port}"
    import datetime as dt

    started = dt.datetime.now(dt.timezone.utc).isoformat()
    with SampleServer() as server:
        os.environ["SAMPLE_BASE_URL"] = server.base_url
        print(f"serving the sample feeds from {server.base_url}")
        try:
            summary = run_job(str(EXAMPLES / "config.yaml"), "kafka", None, list(beam_args))
        except (ConfigError, KafkaUnavailable) as exc:
            print(f"newsingest demo: {exc}", file=sys.stderr)
            return 2
    print_summary(summary, "kafka", None)
    _show_written(summary["config"], started)
    print(f"the broker keeps running; stop it with: bash {KAFKA_SCRIPT.relative_to(REPO_ROOT)} stop")
    return 0


def _show_written(config, since: str) -> None:
    """Print the articles this run wrote, read back from the topic by a separate consumer."""
    import json

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(config.topics["articles"], bootstrap_servers=config.kafka["bootstrap_servers"],
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000)
    titles = {}
    for msg in consumer:
        rec = json.loads(msg.value)
        if rec["fetched_at"] >= since:  # earlier runs' records stay on the topic
            titles[rec["id"]] = (rec.get("title"), [t["id"] for t in rec.get("topics", [])])
    consumer.close()
    print(f"{len(titles)} article(s) written to {config.topics['articles']} by this run:")
    for title, topics in titles.values():
        print(f"  - {title}  topics={','.join(topics) or '-'}")
