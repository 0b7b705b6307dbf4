"""Resident memory of this process: now, at its peak, and at its peak since a chosen moment (Linux).

Why: "adaptation fits where inference fits" is a claim about peak resident memory. The lifetime peak
(``ru_maxrss``) also counts loading, so a phase is measured on its own: :func:`reset_peak` writes ``5`` to
``/proc/self/clear_refs``, which resets the kernel's high-water mark ``VmHWM`` to the current RSS (Linux
>= 4.0); :func:`peak_mb` then reads the peak reached since. Where that is not possible (another OS),
:func:`reset_peak` returns ``False`` and :func:`peak_mb` is the lifetime peak.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_mb(who: int) -> float:
    kb = resource.getrusage(who).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)  # macOS reports bytes


def rss_mb() -> float:
    """Resident set size now (MB), or the lifetime peak where ``/proc`` is missing."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else _maxrss_mb(resource.RUSAGE_SELF)


def peak_mb() -> float:
    """Peak resident set size (MB) since the last successful :func:`reset_peak`, else since the start."""
    kb = _status_kb("VmHWM")
    return kb / 1024 if kb is not None else _maxrss_mb(resource.RUSAGE_SELF)


def lifetime_peak_mb() -> float:
    """Peak resident set size of the whole process so far (MB, ``ru_maxrss``)."""
    return _maxrss_mb(resource.RUSAGE_SELF)


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS; ``False`` where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def release() -> bool:
    """Collect garbage and hand freed heap memory back to the system (glibc ``malloc_trim``).

    Why: glibc raises its mmap threshold after large frees, so the float weights a conversion (quantisation)
    freed stay in the heap and in RSS; a device would not keep them. ``False`` where glibc is not the
    allocator (nothing is trimmed then).
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


__all__ = ["lifetime_peak_mb", "peak_mb", "release", "reset_peak", "rss_mb"]
