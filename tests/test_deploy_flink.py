"""The local Beam Flink job server (deploy/flink/job-server-jar.sh) and the options of
deploy/flink/submit.sh on a real Flink.

The launcher jar must start FlinkJobServerDriver from the Maven Central jars; a small streaming
pipeline with keyed state then runs on embedded Flink (`--flink_master=[local]`, LOOPBACK
workers) with exactly the checkpointing and state-backend options submit.sh passes in
production (RocksDB, exactly-once checkpoints), only the runner, the worker environment and the
checkpoint directory swapped for local ones: a misspelt or mistyped option there fails here, not
on a cluster. About a minute: the job server and embedded Flink start in ~30 s.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_deploy import submit_args

JOB_SERVER_SCRIPT = REPO / "deploy" / "flink" / "job-server-jar.sh"


@pytest.fixture(scope="module")
def job_server_jar() -> Path:
    proc = subprocess.run(["bash", str(JOB_SERVER_SCRIPT)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


def test_launcher_jar_names_the_driver_and_existing_jars(job_server_jar):
    with zipfile.ZipFile(job_server_jar) as zf:
        manifest = zf.read("META-INF/MANIFEST.MF").decode()
    fields = {}
    for line in manifest.replace("\r\n ", "").splitlines():  # undo the 72-byte line folding
        if ": " in line:
            key, value = line.split(": ", 1)
            fields[key] = value
    assert fields["Main-Class"] == "org.apache.beam.runners.flink.FlinkJobServerDriver"
    class_path = fields["Class-Path"].split()
    assert any(Path(p).name.startswith("beam-runners-flink-1.19-") for p in class_path)
    assert any(Path(p).name.startswith("flink-statebackend-rocksdb-") for p in class_path)
    missing = [p for p in class_path if not (job_server_jar.parent / p).is_file()]
    assert not missing
    usage = subprocess.run(["java", "-jar", str(job_server_jar), "--help"], capture_output=True, text=True,
                           timeout=120)
    assert "--flink-master" in usage.stdout + usage.stderr


PIPELINE = r'''
"""Keyed running counts over a short periodic impulse, written one line per element."""
import json, sys, time
import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec


class RunningCount(beam.DoFn):
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())

    def process(self, kv, count=beam.DoFn.StateParam(COUNT)):
        n = (count.read() or 0) + 1
        count.write(n)
        yield kv[0], n


class AppendTo(beam.DoFn):
    def __init__(self, path):
        self.path = path

    def process(self, kv):
        with open(self.path, "a") as fh:
            fh.write(json.dumps(kv) + "\n")


out, elements, beam_args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
start = time.time()
with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
    (p | PeriodicImpulse(start_timestamp=start, stop_timestamp=start + elements, fire_interval=1)
       | "Key" >> beam.Map(lambda ts: (int(round(ts - start)) % 2, 1))
       | "Count" >> beam.ParDo(RunningCount())
       | "Write" >> beam.ParDo(AppendTo(out)))
'''


@pytest.mark.streaming
def test_submit_options_run_on_flink_with_rocksdb_checkpoints(job_server_jar, tmp_path):
    production = submit_args(tmp_path, BEAM_JOB_ENDPOINT="unused:8099")
    beam_options = [a for a in production[3:] if a.startswith("--") and not a.startswith(
        ("--runner=", "--job_endpoint=", "--environment_type=", "--environment_config=", "--job_name=",
         "--state_backend_storage_path=", "--checkpointing_interval="))]
    assert "--state_backend=rocksdb" in beam_options and "--checkpointing_mode=EXACTLY_ONCE" in beam_options
    checkpoints = tmp_path / "checkpoints"
    local = ["--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
             f"--flink_job_server_jar={job_server_jar}", "--environment_type=LOOPBACK",
             f"--state_backend_storage_path={checkpoints.as_uri()}", "--checkpointing_interval=2000",
             # with checkpointing on, Flink keeps finished sources alive unless told otherwise
             "--shutdown_sources_after_idle_ms=2000"]
    script, out, elements = tmp_path / "pipeline.py", tmp_path / "out.jsonl", 10
    script.write_text(PIPELINE, encoding="utf-8")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(script), str(out), str(elements), *local, *beam_options],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [tuple(json.loads(line)) for line in out.read_text().splitlines()]
    assert len(rows) == elements, rows
    # keyed state survived across bundles: each key counted 1..n without gaps or repeats
    for key in (0, 1):
        counts = sorted(n for k, n in rows if k == key)
        assert counts == list(range(1, len(counts) + 1)), rows
    # the RocksDB checkpoint storage of the job was set up where the option said
    assert [p.name for p in checkpoints.iterdir()], "no job directory under the checkpoint path"
    print(f"flink [local] run with the submit.sh options: {elapsed:.1f} s")
