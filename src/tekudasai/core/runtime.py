"""Process settings for a long-running worker: GC, supervisor, CPUs, the header deadline."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import os
import signal
import sys
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A request allocates and frees thousands of objects; with CPython's default first threshold
# (700) those short-lived peaks alone trigger collections. At this level only objects that
# really accumulate (reference cycles) do.
YOUNG_THRESHOLD = 20_000
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
DEFAULT_HEADER_TIMEOUT = 20.0


def tune_garbage_collector() -> None:
    """Freeze what start-up built and collect young objects less often.

    Without it a worker under load ran a full collection every second or so, each walking
    every object the app holds (routes, models, mappers): about 120 ms with all requests
    stalled, which was the whole of the p99 latency at 32 clients. Frozen objects are never
    walked again, so the remaining full collections stay short.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def exit_with_supervisor() -> None:
    """Have the kernel send this worker SIGTERM when its supervisor dies (Linux).

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers; without
    this they would live on, still listening on the port and serving a database that may be
    gone. SIGTERM lets uvicorn finish in-flight requests first.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not fatal: the supervisor still stops its workers on a normal shutdown
    if os.getppid() == 1:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


# glibc's mallopt parameters, and the largest mmap threshold it accepts on 64-bit systems.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def reuse_large_blocks(size: int, count: int) -> bool:
    """Let malloc hand out `count` blocks of `size` bytes at once, again and again, from memory
    it keeps: from the heap rather than a fresh mmap each (page faults on every byte), and
    without trimming the heap each time they are freed together. False without glibc.

    glibc's own thresholds get there only after the first block, and still trimmed the heap
    when two freed blocks met at its top. What is kept goes back through release_free_memory().
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None or size >= MMAP_THRESHOLD_MAX:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, size * (count + 1))
    )


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the kernel (glibc's malloc_trim); False where the
    C library has no such call (musl, macOS).

    glibc keeps what a thread frees for that thread's next allocation, and once a block of
    some megabytes has been freed it stops returning blocks of that size to the kernel at all.
    Freed memory in the middle of a heap only goes back through malloc_trim.
    """
    trim = _libc_function("malloc_trim")
    return trim is not None and bool(trim(0))


@functools.cache
def _libc_function(name: str) -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask and the container's CPU quota, whichever is
    smaller (os.cpu_count() sees every core of the host)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def cgroup_cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """The cgroup v2 CPU limit rounded up to whole CPUs (`max` or no cgroup: None)."""
    try:
        with open(path, encoding="ascii") as handle:
            quota, _, period = handle.read().strip().partition(" ")
    except OSError:
        return None
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return max(1, -(-int(quota) // int(period)))


class OneWriteResponses:
    """The transport as uvicorn's protocol sees it, sending a response's head and first body
    chunk in one write.

    uvicorn writes the status line and headers when the app sends `http.response.start`, then
    the body at `http.response.body`: two send() calls and two TCP segments for every
    response, although the app sends both messages in the same step of the event loop. Here
    the head waits for the next write and leaves with it; if none comes in this step (a
    streamed body still being produced, a `100 Continue`) it leaves at the loop's next turn.
    Everything else is the transport's own.
    """

    __slots__ = ("_held", "_hold_next", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._hold_next = False

    def hold_next_write(self) -> None:
        """A response begins: its first write is its head."""
        self._hold_next = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            data, self._held = self._held + bytes(data), None
        elif self._hold_next:
            self._hold_next = False
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for the request line and headers, writing each
    response's head with its body (OneWriteResponses).

    uvicorn has none: its keep-alive timer is cancelled by the first byte that arrives, so a
    client that sends half a request line and goes silent (or connects and sends nothing)
    holds the connection forever. The deadline starts when the connection opens and when a
    new request begins, and ends when the headers are complete; on expiry the connection is
    closed. The body and the response are not limited by it.
    """

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "tk_header_timeout", DEFAULT_HEADER_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.one_write = OneWriteResponses(transport, self.loop)
        super().connection_made(self.one_write)  # type: ignore[arg-type]
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        self.one_write.hold_next_write()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
