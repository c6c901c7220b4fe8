"""Check that run configurations load with news-ingest's own loader.

A deployment ships a configuration that only the job reads, at submit time, on a cluster: a
typo there (an unknown dedup setting, a feed without a URL, broken YAML) would surface only
there. ``${VAR}`` references without a default get a placeholder value here, since the
deployment, not CI, provides them.

    python3 check_run_config.py FILE...
"""
from __future__ import annotations

import os
import re
import sys

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def problems(path: str) -> list[str]:
    from pipelines.config import ConfigError, load_config

    with open(path, encoding="utf-8") as fh:
        for name in _VAR.findall(fh.read()):
            os.environ.setdefault(name, f"placeholder-{name.lower()}:9092")
    try:
        config = load_config(path)
    except ConfigError as exc:
        return [f"{path}: {exc}"]
    return [f"{path}: feed {f['url']} is not http(s)" for f in config.feeds
            if not str(f["url"]).startswith(("http://", "https://"))]


if __name__ == "__main__":
    found = [p for path in sys.argv[1:] for p in problems(path)]
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
