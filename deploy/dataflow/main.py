"""Dataflow flex-template entry point for news-ingest.

The template launcher runs this file (FLEX_TEMPLATE_PYTHON_PY_FILE) with the template's
parameters (metadata.json) and the Dataflow options as command-line flags. It reads the run
configuration (a gs:// path or any path Beam's file systems open), checks the brokers and topics,
builds the same graph as `newsingest run`, submits it as a streaming job and returns at once:
the launcher waits for this process, and the job runs on Dataflow's workers (this same image,
given as sdk_container_image).
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    """The template's own parameters; each is declared in metadata.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="run configuration YAML (gs://... or a local path)")
    parser.add_argument("--sink", choices=("kafka", "jsonl"), default="kafka")
    parser.add_argument("--output", help="directory for --sink=jsonl (gs://...)")
    return parser


def local_copy(path: str) -> str:
    """A local file with the content of ``path``, which may be on any Beam file system."""
    if "://" not in path:
        return path
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as src:
        data = src.read()
    fd, local = tempfile.mkstemp(suffix=".yaml", prefix="newsingest-config-")
    with os.fdopen(fd, "wb") as dst:
        dst.write(data)
    return local


def main(argv: Optional[Sequence[str]] = None) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from connectors.kafka_admin import ensure_topics
    from pipelines.config import load_config
    from pipelines.ingest import build_pipeline

    args, beam_args = build_parser().parse_known_args(argv)
    config = load_config(local_copy(args.config))
    if args.sink == "kafka":
        ensure_topics(config.kafka, list(config.topics.values()))
    options = PipelineOptions(list(beam_args))
    options.view_as(StandardOptions).streaming = True
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config, sink=args.sink, output=args.output)
    pipeline.run()  # no wait_until_finish: the job outlives the launcher


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    main()
