"""After tune_allocator, a large block freed does not make later large blocks come from the heap."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from pipelines.allocator import tune_allocator

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# In a fresh interpreter: free one 8 MB block, then hold a 1 MB one; print how much of malloc's
# memory is in mmapped blocks before and after taking it (mallinfo2's hblkhd).
PROBE = """
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "tuned":
    from pipelines.allocator import tune_allocator
    assert tune_allocator()
big = bytearray(8 << 20)
del big
before = libc.mallinfo2().hblkhd
page = bytearray(1 << 20)
print(libc.mallinfo2().hblkhd - before)
"""


def _mmapped_growth(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_large_blocks_stay_mmapped_after_a_larger_one_is_freed():
    # glibc's default: freeing the 8 MB block raised the threshold, the 1 MB page comes from the heap
    assert _mmapped_growth("default") == 0
    # tuned: the threshold stays at 128 KB, the page has its own mapping and goes back on free
    assert _mmapped_growth("tuned") >= 1 << 20


def test_tuning_is_idempotent():
    assert tune_allocator() is True
    assert tune_allocator() is True
