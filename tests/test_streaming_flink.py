"""Real streaming on local Flink (Beam's Flink job server, LOOPBACK workers): the growing-feed scenario."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO
from tests.test_streaming import run_growing_feed_scenario


def flink_job_server_jar() -> str:
    proc = subprocess.run(["bash", str(REPO / "deploy" / "flink" / "job-server-jar.sh")], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"the Flink job server could not be prepared: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.streaming
def test_flink_local_streaming_growing_feed(kafka_broker, tmp_path):
    jar = flink_job_server_jar()
    run_growing_feed_scenario(kafka_broker, tmp_path, [
        "--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
        f"--flink_job_server_jar={jar}", "--environment_type=LOOPBACK", "--parallelism=2",
    ], startup_s=300)
