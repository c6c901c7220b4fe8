"""Cheap weighing of Beam's cached state.

Beam's SDK worker keeps user state in a cache and weighs every value it puts there with
``objsize.get_deep_size``. objsize, by default, first gathers the globals dict of every loaded
module to exclude them (thousands of modules in a worker with Beam, lxml and kafka loaded):
about 1 ms per state write, measured as 70% of the whole DirectRunner job (benchmarks/throughput.py).
State values here are tuples, bytes, strings and plain dicts, which never hold a module's globals
dict (Beam's filter already skips modules, types and functions), so the weight is the same
without that exclusion. The setting is objsize's own, process-wide; stateful DoFns call this in
``setup`` so that every SDK worker process gets it.
"""
from __future__ import annotations

import objsize


def cheap_state_weighing() -> None:
    """Weigh cached state without first collecting every module's globals (idempotent)."""
    objsize.default_settings.update(exclude_modules_globals=False)
