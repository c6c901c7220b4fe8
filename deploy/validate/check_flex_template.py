"""Check a Dataflow flex template's metadata.json against the main.py it launches.

Dataflow passes each template parameter to main.py as ``--name=value``; a parameter main.py does
not accept fails only at launch, on Google's side. This checks, offline: the metadata has the
fields Dataflow requires, each parameter has a name, label and help text, its regexes compile and
accept its own example, and main.py's parser (``build_parser()``) knows every parameter while
every required option of the parser is a non-optional parameter.

    python3 check_flex_template.py DIR     (DIR holds metadata.json and main.py)
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

# options the launcher and Dataflow add themselves; metadata may declare them, main.py need not
DATAFLOW_OPTIONS = {"sdk_container_image", "staging_location", "temp_location", "num_workers", "max_num_workers"}


def load_parser(main_py: Path):
    spec = importlib.util.spec_from_file_location("flex_template_main", main_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def problems(template_dir: Path) -> list[str]:
    out = []
    try:
        meta = json.loads((template_dir / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"metadata.json: {exc}"]
    for field in ("name", "parameters"):
        if field not in meta:
            out.append(f"metadata.json: no {field!r}")
    for flag in ("streaming", "supportsAtLeastOnce", "supportsExactlyOnce"):
        if flag in meta and not isinstance(meta[flag], bool):
            out.append(f"metadata.json: {flag!r} must be true or false")
    parser = load_parser(template_dir / "main.py")
    accepted = {a.dest: a for a in parser._actions if a.option_strings}
    declared = {}
    for i, param in enumerate(meta.get("parameters") or []):
        name = param.get("name")
        where = f"metadata.json: parameter {name or '#' + str(i + 1)}"
        for field in ("name", "label", "helpText"):
            if not param.get(field):
                out.append(f"{where}: no {field!r}")
        if "isOptional" in param and not isinstance(param["isOptional"], bool):
            out.append(f"{where}: isOptional must be true or false")
        for rx in param.get("regexes") or []:
            try:
                pattern = re.compile(rx)
            except re.error as exc:
                out.append(f"{where}: regex {rx!r}: {exc}")
                continue
            example = re.search(r"Example: (\S+)", param.get("helpText", ""))
            if example and not pattern.search(example.group(1)):
                out.append(f"{where}: its own example {example.group(1)!r} fails regex {rx!r}")
        if name:
            declared[name] = param
            if name not in accepted and name not in DATAFLOW_OPTIONS:
                out.append(f"{where}: main.py does not accept --{name}")
    for dest, action in accepted.items():
        if action.required and (dest not in declared or declared[dest].get("isOptional")):
            out.append(f"metadata.json: main.py requires --{dest}, which is not a required parameter")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: check_flex_template.py DIR")
    found = problems(Path(sys.argv[1]))
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
