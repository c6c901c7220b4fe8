"""``newsingest``: the command line of news-ingest.

  newsingest run --config FILE [--sink kafka|jsonl] [--output PATH] [Beam options...]
  newsingest extract FILE...          one JSON object a line per HTML file
  newsingest tag [FILE|-]             JSONL (id, title, text) in, JSONL with topics out
  newsingest dedup FILE               JSONL in, each out with cluster_id and duplicate_of
  newsingest feed FILE|URL [--allow-host HOST[:PORT]]...   normalised entries of one feed
  newsingest demo                     the whole job on the bundled sample and a local Kafka

Beam options after the known ones pass through untouched (--runner, --streaming, ...).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Iterable, Optional, Sequence


def _jsonl_in(path: str) -> Iterable[dict]:
    fh = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"newsingest: {path}:{n}: not JSON: {exc.msg}")


def _print_jsonl(records: Iterable[dict]) -> None:
    for rec in records:
        sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")


def cmd_extract(args) -> int:
    from pipelines.extract import ExtractError, extract_article

    status = 0
    for path in args.files:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            if path.endswith(".gz"):
                import gzip

                data = gzip.decompress(data)
            rec = extract_article(data, args.url)
        except (OSError, ExtractError) as exc:
            print(f"newsingest extract: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        _print_jsonl([{"path": path, **rec}])
    return status


def cmd_tag(args) -> int:
    from pipelines.tag import load_taxonomy, tag_records

    _print_jsonl(tag_records(_jsonl_in(args.file), load_taxonomy(args.taxonomy)))
    return 0


def cmd_dedup(args) -> int:
    from pipelines.dedup import cluster_offline

    _print_jsonl(cluster_offline(_jsonl_in(args.file)))
    return 0


def cmd_feed(args) -> int:
    from connectors.feeds import FeedParseError, parse_feed
    from connectors.fetch import FetchError, Fetcher, FetchPolicy

    src = args.source
    try:
        if src.startswith(("http://", "https://")):
            resp = Fetcher(FetchPolicy(allow_hosts=tuple(args.allow_host))).get(src, kind="feed")
            parsed = parse_feed(resp.body, resp.url, resp.headers)
        else:
            with open(src, "rb") as fh:
                parsed = parse_feed(fh.read(), "file://" + os.path.abspath(src))
    except FetchError as exc:
        print(f"newsingest feed: {exc.kind}: {exc.reason} ({exc.url})", file=sys.stderr)
        return 1
    except FeedParseError as exc:
        print(f"newsingest feed: {src}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"newsingest feed: {src}: {exc.strerror}", file=sys.stderr)
        return 1
    _print_jsonl(parsed["entries"])
    return 0


# Beam's portable runners (Prism, Flink) open the job's state stream with --job_server_timeout
# (300 s by default) as its gRPC deadline: a streaming job's client then fails after 5 minutes.
STREAMING_JOB_SERVER_TIMEOUT_S = 10 * 365 * 86400


def pipeline_options(beam_args: Sequence[str]):
    """(PipelineOptions, streaming?) from the Beam arguments; streaming jobs get a job-server
    timeout long enough to wait on them, unless one is given."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    args = list(beam_args)
    streaming = PipelineOptions(args).view_as(StandardOptions).streaming
    if streaming and not any(a.startswith(("--job_server_timeout", "--job-server-timeout")) for a in args):
        args.append(f"--job_server_timeout={STREAMING_JOB_SERVER_TIMEOUT_S}")
    return PipelineOptions(args), streaming


def run_job(config_path: str, sink: str, output: Optional[str], beam_args: Sequence[str]) -> dict:
    """Run the pipeline to completion; return the counters and where the output went."""
    import apache_beam as beam

    from connectors.kafka_admin import ensure_topics
    from pipelines.allocator import tune_allocator
    from pipelines.config import load_config
    from pipelines.ingest import build_pipeline

    tune_allocator()  # before the runner's threads start: the DirectRunner and LOOPBACK workers live in this process
    config = load_config(config_path)
    if sink == "kafka":
        ensure_topics(config.kafka, list(config.topics.values()))
    options, streaming = pipeline_options(beam_args)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config, sink=sink, output=output, streaming=streaming)
    result = pipeline.run()
    result.wait_until_finish()
    counters, steps = job_metrics(result)
    return {"config": config, "counters": counters, "step_msecs": steps}


def job_metrics(result) -> tuple[dict[str, int], dict[str, float]]:
    """(counters by namespace.name, each step's DoFn milliseconds) of a finished job."""
    # The DirectRunner keeps each stage's monitoring infos as a one-shot iterator, shared by
    # metrics() and monitoring_infos(): made lists here, so both see all of them.
    by_stage = getattr(result, "_monitoring_infos_by_stage", None)
    if isinstance(by_stage, dict):
        for stage, infos in list(by_stage.items()):
            by_stage[stage] = list(infos)
    steps = step_msecs(result)
    counters: dict[str, int] = {}
    try:
        for c in result.metrics().query()["counters"]:
            name = f"{c.key.metric.namespace}.{c.key.metric.name}"
            counters[name] = counters.get(name, 0) + (c.committed if c.committed is not None else c.attempted)
    except Exception:  # some runners do not report metrics
        pass
    return counters, steps


def step_msecs(result) -> dict[str, float]:
    """Milliseconds each step spent in its DoFn (start, process, finish), where the runner reports
    it (the DirectRunner's monitoring infos); empty elsewhere."""
    from apache_beam.metrics import monitoring_infos as mi

    urns = {mi.START_BUNDLE_MSECS_URN, mi.PROCESS_BUNDLE_MSECS_URN, mi.FINISH_BUNDLE_MSECS_URN}
    msecs: dict[str, float] = {}
    try:
        infos = result.monitoring_infos()
    except (AttributeError, NotImplementedError):
        return msecs
    for info in infos:
        if info.urn in urns and info.labels.get("PTRANSFORM"):
            step = info.labels["PTRANSFORM"]
            msecs[step] = msecs.get(step, 0.0) + mi.extract_counter_value(info)
    return {k: v for k, v in sorted(msecs.items(), key=lambda kv: -kv[1]) if v}


def print_summary(summary: dict, sink: str, output: Optional[str]) -> None:
    config, counters = summary["config"], summary["counters"]
    print("news-ingest run finished")
    for name in sorted(counters):
        print(f"  {name:<40} {counters[name]}")
    if sink == "kafka":
        servers = config.kafka["bootstrap_servers"]
        print("read the topics with, e.g.:")
        for topic in config.topics.values():
            print(f"  kcat -C -b {servers} -t {topic} -e -f '%k %h\\n%s\\n\\n'")
    else:
        print(f"records written under {output}")


def cmd_run(args, beam_args) -> int:
    from connectors.kafka_admin import KafkaUnavailable
    from pipelines.config import ConfigError

    from connectors.kafka_sink import SinkDeliveryError

    try:
        summary = run_job(args.config, args.sink, args.output, beam_args)
    except (ConfigError, KafkaUnavailable, ValueError) as exc:
        print(f"newsingest run: {exc}", file=sys.stderr)
        return 2
    except SinkDeliveryError as exc:
        print(f"newsingest run: {exc}", file=sys.stderr)
        return 3
    print_summary(summary, args.sink, args.output)
    if args.metrics_json:
        import json

        with open(args.metrics_json, "w", encoding="utf-8") as fh:
            json.dump({"counters": summary["counters"], "step_msecs": summary["step_msecs"]}, fh, indent=1)
    return 0


def cmd_demo(args, beam_args) -> int:
    from pipelines.demo import run_demo

    return run_demo(port=args.kafka_port, beam_args=beam_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsingest", description="news feeds to clean, tagged Kafka records")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the ingestion job (extra options go to Beam)")
    p.add_argument("--config", required=True)
    p.add_argument("--sink", choices=("kafka", "jsonl"), default="kafka")
    p.add_argument("--output", help="directory for --sink jsonl")
    p.add_argument("--metrics-json", metavar="FILE", help="write the counters and each step's DoFn time here")
    p = sub.add_parser("extract", help="extract clean text and metadata from HTML files")
    p.add_argument("files", nargs="+")
    p.add_argument("--url", help="the page's URL, for resolving links")
    p = sub.add_parser("tag", help="tag JSONL records with topics")
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--taxonomy", help="taxonomy YAML (default: the bundled one)")
    p = sub.add_parser("dedup", help="cluster JSONL records into stories")
    p.add_argument("file", nargs="?", default="-")
    p = sub.add_parser("feed", help="print the normalised entries of one feed")
    p.add_argument("source", help="a file or an http(s) URL")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="exempt this host from the private-network guard (repeatable)")
    p = sub.add_parser("demo", help="run the job on the bundled sample with a local Kafka")
    p.add_argument("--kafka-port", type=int, default=int(os.environ.get("KAFKA_PORT", 9092)))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command in ("run", "demo"):
        return (cmd_run if args.command == "run" else cmd_demo)(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"extract": cmd_extract, "tag": cmd_tag, "dedup": cmd_dedup, "feed": cmd_feed}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
