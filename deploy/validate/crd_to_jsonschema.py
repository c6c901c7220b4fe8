"""Turn CustomResourceDefinitions into the JSON schemas kubeconform reads.

kubeconform validates custom resources against ``{group}/{kind}_{version}.json`` files; a CRD
carries that schema as ``spec.versions[].schema.openAPIV3Schema``. This does what kubeconform's
own ``openapi2jsonschema.py`` does (which needs the network), in strict mode: every object that
lists its properties and does not say otherwise rejects unknown ones, so a misspelt field in a
FlinkDeployment is an error, not a silently ignored key.

    python3 crd_to_jsonschema.py OUT_DIR CRD.yml...
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(schema: Any) -> Any:
    """A copy of ``schema`` with OpenAPI's nullable made JSON Schema and unknown fields refused."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    open_ended = out.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in out
    if "properties" in out and not open_ended:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict) -> dict[str, dict]:
    """File name (relative to the schema dir) to JSON schema, one per served version."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: kind {crd.get('kind')!r}")
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    out = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        props.setdefault("metadata", {"type": "object"})  # ObjectMeta: the API server's to check
        out[f"{group}/{kind.lower()}_{version['name']}.json"] = schema
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    for path in argv[1:]:
        with open(path, encoding="utf-8") as fh:
            for doc in yaml.safe_load_all(fh):
                if not doc:
                    continue
                for name, schema in crd_schemas(doc).items():
                    target = out_dir / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(json.dumps(schema, indent=1), encoding="utf-8")
                    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
