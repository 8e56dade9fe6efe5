"""Memory probe for `bench/memory.py --probe`, loaded by every Python process of the run
through PYTHONPATH (never by a deployment).

On SIGUSR2 a process writes to `$TK_MEMPROBE_DIR/<pid>.txt`: VmRSS and its parts, resident
memory by mapping (anonymous vs. each shared library), glibc's malloc counters (mallinfo2:
heap in use vs. free but kept), its threads, tracemalloc's total and top files (when
PYTHONTRACEMALLOC is set) and the live objects counted by type.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import signal
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _status() -> dict[str, str]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _mallinfo() -> dict[str, float]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    mb = 1024 * 1024
    return {
        "sbrk+arenas (arena)": info.arena / mb,
        "mmapped chunks (hblkhd)": info.hblkhd / mb,
        "in use (uordblks)": info.uordblks / mb,
        "free, kept (fordblks)": info.fordblks / mb,
        "trimmable top (keepcost)": info.keepcost / mb,
    }


def _mappings(top: int = 15) -> list[str]:
    """Resident memory by mapping: anonymous (heaps, arenas) vs. each shared library."""
    found: collections.Counter[str] = collections.Counter()
    current = "[anon]"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            current = head[5] if len(head) == 6 else "[anon]"
        elif line.startswith("Rss:"):
            found[current] += int(line.split()[1])
    return [f"  {kb / 1024:7.1f} MB {name}" for name, kb in found.most_common(top)]


def _dump(_signum: int, _frame: Any) -> None:
    directory = Path(os.environ["TK_MEMPROBE_DIR"])
    lines = [f"pid {os.getpid()} argv {' '.join(sys.argv)[:120]}"]
    status = _status()
    for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData", "Threads"):
        lines.append(f"{key}: {status.get(key)}")
    lines.append("resident by mapping:")
    lines += _mappings()
    lines.append("threads: " + ", ".join(sorted(t.name for t in threading.enumerate())))
    lines += [f"malloc {k}: {v:.1f} MB" for k, v in _mallinfo().items()]
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        lines.append(
            f"tracemalloc: {current / 2**20:.1f} MB traced (peak {peak / 2**20:.1f} MB), "
            f"its own overhead {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MB"
        )
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        for stat in snapshot.statistics("filename")[:40]:
            frame = stat.traceback[0]
            lines.append(f"  {stat.size / 1024:9.0f} KiB {stat.count:8d} {frame.filename}")
        lines.append("top lines:")
        for stat in snapshot.statistics("lineno")[:25]:
            frame = stat.traceback[0]
            lines.append(
                f"  {stat.size / 1024:9.0f} KiB {stat.count:8d} {frame.filename}:{frame.lineno}"
            )
    objects = gc.get_objects()
    caches = sorted((len(o) for o in objects if type(o).__name__ == "LRUCache"), reverse=True)
    lines.append(f"SQLAlchemy LRU caches (entries): {caches[:8]}")
    counts = collections.Counter(type(o).__name__ for o in objects)
    lines.append(f"gc-tracked objects: {sum(counts.values())} (frozen {gc.get_freeze_count()})")
    lines += [f"  {n:8d} {name}" for name, n in counts.most_common(25)]
    lines.append(f"modules: {len(sys.modules)}")
    (directory / f"{os.getpid()}.txt").write_text("\n".join(lines) + "\n")


if os.environ.get("TK_MEMPROBE_DIR"):
    signal.signal(signal.SIGUSR2, _dump)
