"""How a cartpulse process hands freed memory back to the operating system: not at once.

The engine allocates and frees the same few hundred megabytes for every micro-batch. Both
allocators underneath return freed memory to the kernel right away by default (pyarrow's
mimalloc after 10 ms, glibc's malloc for blocks above its thresholds), so every batch faults
its memory in again, zero-filled. That costs little on bare metal, but on a virtual machine
whose host takes back memory the guest has freed, each fault also goes to the host: a
20.7 M-event replay took 24.1–24.5 s with the defaults and 21.9–22.3 s with freed memory
kept for reuse (page faults 1.1–1.6 M → 0.6–0.7 M; peak RSS 1.70–1.75 → 1.81–1.83 GB).
The peak is what a process needs anyway; it is kept until the process exits.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mimalloc's setting (pyarrow's default allocator): never give freed pages back early.
#: mimalloc reads it once, when pyarrow loads; a value set by the user is kept.
_MIMALLOC = ("MIMALLOC_PURGE_DELAY", "-1")
#: glibc mallopt parameters (malloc.h) and the values cartpulse uses.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_BYTES = 1 << 30
"""free heap memory above this is returned to the kernel (glibc's default: 128 KiB, growing)"""
_MMAP_BYTES = 256 << 20
"""blocks above this get their own mapping, unmapped when freed (glibc: 128 KiB, growing)"""


def keep_freed_memory() -> bool:
    """Let freed memory be reused by later batches instead of returned to the OS at once;
    call before pyarrow is imported. Returns whether glibc's malloc took the settings."""
    name, value = _MIMALLOC
    os.environ.setdefault(name, value)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Setting either threshold also stops glibc from moving them as blocks come and go.
    return bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES) and mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES))
