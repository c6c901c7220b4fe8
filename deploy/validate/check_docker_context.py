"""Check that what a Dockerfile copies is in its build context, past its .dockerignore.

No Docker engine runs in CI, so a COPY of a file that was moved, or that the ignore file leaves
out of the context, would only fail on a user's machine. The deploy Dockerfiles are built from
the repository root (their header says so); the ignore file is ``<Dockerfile>.dockerignore``
beside the Dockerfile (what BuildKit reads), else ``.dockerignore`` at the root.

    python3 check_docker_context.py CONTEXT_DIR DOCKERFILE...
"""
from __future__ import annotations

import fnmatch
import shlex
import sys
from pathlib import Path


def read_ignore(path: Path) -> list[tuple[bool, list[str]]]:
    """(is_exception, pattern segments) per line, in order."""
    rules = []
    if not path.is_file():
        return rules
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        rules.append((negate, [s for s in pattern.strip("/").split("/") if s not in ("", ".")]))
    return rules


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])


def ignored(rel_path: str, rules: list[tuple[bool, list[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = rel_path.strip("/").split("/")
    excluded = False
    for negate, pattern in rules:
        if any(_match(pattern, parts[:n]) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def copy_sources(dockerfile: Path) -> list[tuple[int, str]]:
    """(line number, source) of each COPY/ADD from the build context (not --from a stage)."""
    out, pending, start = [], "", 0
    for n, raw in enumerate(dockerfile.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words, pending = shlex.split(pending + line), ""
        if words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
            continue
        out.extend((start, src) for src in args[:-1])
    return out


def problems(context: Path, dockerfile: Path) -> list[str]:
    own = dockerfile.with_name(dockerfile.name + ".dockerignore")
    rules = read_ignore(own if own.is_file() else context / ".dockerignore")
    out = []
    for line, src in copy_sources(dockerfile):
        rel = src.rstrip("/")
        target = context / rel
        if not target.exists():
            out.append(f"{dockerfile}:{line}: COPY source {src} is not in the build context {context}")
            continue
        files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
        kept = [p for p in files if not ignored(str(p.relative_to(context)), rules)]
        if not kept:
            out.append(f"{dockerfile}:{line}: COPY source {src} is excluded by the .dockerignore")
    return out


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: check_docker_context.py CONTEXT_DIR DOCKERFILE...")
    ctx = Path(sys.argv[1])
    found = [p for df in sys.argv[2:] for p in problems(ctx, Path(df))]
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
