"""A streaming read replica (DATABASE_REPLICA_URL) for the reads that tolerate a little lag.

Which reads: only routes that ask for `ReadDb` (db/session.py) — ticket lists, search, a
reporter's own ticket — never sign-in, sessions, or anything a write depends on. Those routes
still find the principal on the primary (a signed-out session ends at once on every node).

When the replica serves them, decided per request from state kept in memory (no round trip):

- A monitor task samples twice a second: the primary's WAL position, then the replica's replay
  position. The replica holds everything the primary had at the newest sample whose position
  it has replayed, so its lag is bounded by that sample's age (measured, not guessed from
  `pg_last_xact_replay_timestamp()`, which grows on an idle primary). Down, promoted (no
  longer in recovery), a sample older than `STALE_AFTER_S`, or lag plus the sample's age over
  TK_REPLICA_MAX_LAG_S: the primary serves.
- Read-your-writes: after a request that wrote commits, its WAL insert position (taken after
  COMMIT, so it covers the commit record) becomes a *fence*: that client's lag-tolerant reads
  go to the primary until a sample shows the replica replayed past it. The fence travels in a
  signed cookie (any node, any client that keeps cookies) and is kept in this process per
  credential (bearer clients without a cookie jar, on this node). It can expire after
  TK_REPLICA_MAX_LAG_S + 1 s: by then a replica within the limit has the write anyway.
- A replica that fails at checkout is marked down and the request falls back to the primary;
  the next good sample brings it back.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tekudasai.config import Settings
from tekudasai.core.crypto import derive_key, hash_token
from tekudasai.core.csrf import SESSION_COOKIE, session_token
from tekudasai.db.engine import create_engine, make_sessionmaker

log = logging.getLogger(__name__)

FENCE_COOKIE = "tk_rlsn"
# Where a committed write leaves its cookie value for ReplicaFenceMiddleware.
FENCE_SCOPE_KEY = "tk.replica_fence"
SAMPLE_INTERVAL_S = 0.5
# A sample older than this says nothing reliable any more (the monitor is stuck or slow).
STALE_AFTER_S = 3.0
SAMPLE_TIMEOUT_S = 2.0
REPLICA_CONNECT_TIMEOUT_S = 2.0
# A fence that cannot be compared (the primary would not tell its WAL position): primary
# until the fence expires.
UNKNOWN_POSITION = 2**64 - 1
MAX_LOCAL_FENCES = 50_000

State = Literal["starting", "ok", "lagging", "down", "promoted"]


def parse_lsn(value: str) -> int:
    """PostgreSQL's `16/B374D848` as a number."""
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


# WAL page size and page header sizes (short, and long at a segment's start) of a default build.
_WAL_PAGE = 8192
_PAGE_HEADERS = (24, 40)


def insert_position(value: str) -> int:
    """`pg_current_wal_insert_lsn()` as a position a replica's replay can reach.

    Taken after COMMIT it is at or past the commit record's end, even with
    synchronous_commit=off (where the write position can still be short of it). At a page
    boundary PostgreSQL reports it past the next page's header, where no record can end:
    counted back to the boundary, or a replica could never be seen to replay past it.
    """
    position = parse_lsn(value)
    if position % _WAL_PAGE in _PAGE_HEADERS:
        position -= position % _WAL_PAGE
    return position


@dataclass(frozen=True)
class ReplicaStatus:
    state: State
    lag_s: float | None = None
    replay_lsn: int | None = None
    sampled_at: float = 0.0  # time.monotonic() of the sample
    message: str | None = None


class FenceCookie:
    """`<lsn hex>.<expiry unix>.<HMAC>`: a client cannot move its own reads (it could only
    pin them to the primary, which is still a load it must not choose)."""

    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def make(self, lsn: int, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.ttl_s)
        body = f"{lsn:x}.{expires}"
        return f"{body}.{self._sign(body)}"

    def read(self, value: str | None, *, now: float | None = None) -> int | None:
        """The fence's position, or None when absent, expired or not ours."""
        if not value or len(value) > 80:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        lsn_hex, _, expires = body.partition(".")
        try:
            if int(expires) < (now or time.time()):
                return None
            return int(lsn_hex, 16)
        except ValueError:
            return None

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()


class LocalFences:
    """Fences of this process by credential (hash of the session or token)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._fences: dict[bytes, tuple[int, float]] = {}

    def note(self, key: bytes, lsn: int) -> None:
        now = time.monotonic()
        if len(self._fences) >= MAX_LOCAL_FENCES:
            self._fences = {k: v for k, v in self._fences.items() if v[1] > now}
            if len(self._fences) >= MAX_LOCAL_FENCES:
                self._fences.clear()  # cookies still carry fences; this only bounds memory
        current = self._fences.get(key)
        if current is None or current[1] <= now or current[0] < lsn:
            self._fences[key] = (lsn, now + self.ttl_s)
        else:
            self._fences[key] = (current[0], now + self.ttl_s)

    def get(self, key: bytes) -> int | None:
        found = self._fences.get(key)
        if found is None:
            return None
        if found[1] <= time.monotonic():
            del self._fences[key]
            return None
        return found[0]

    def __len__(self) -> int:
        return len(self._fences)


def credential_key(headers: Any) -> bytes | None:
    """Who is asking, as the hash of their session or token (no database lookup)."""
    token = session_token(headers.get("authorization"), _cookie(headers, SESSION_COOKIE))
    return hash_token(token) if token else None


def _cookie(headers: Any, name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw or name not in raw:
        return None
    parsed: SimpleCookie = SimpleCookie()
    try:
        parsed.load(raw)
    except Exception:
        return None
    morsel = parsed.get(name)
    return morsel.value if morsel is not None else None


class Replica:
    """The replica's engine, its measured lag, and the per-request routing decision."""

    def __init__(self, url: str, settings: Settings, primary: AsyncEngine) -> None:
        self.url = url
        self.address = replica_address(url)
        self.max_lag_s = settings.replica_max_lag_s
        self.engine = create_engine(
            url,
            settings,
            application_name="tekudasai-replica",
            connect_timeout=min(settings.db_connect_timeout, REPLICA_CONNECT_TIMEOUT_S),
        )
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.primary = primary
        self.sample_interval_s = SAMPLE_INTERVAL_S
        self.status = ReplicaStatus(state="starting", message="not sampled yet")
        ttl = math.ceil(self.max_lag_s) + 1.0
        self.cookie = FenceCookie(derive_key(settings.master_secret(), "replica-fence"), ttl)
        self.local_fences = LocalFences(ttl)
        self.secure_cookies = settings.secure_cookies
        # (monotonic time, primary WAL position) per sample, newest last.
        history = max(20, int((self.max_lag_s * 4 + 10) / SAMPLE_INTERVAL_S))
        self._history: collections.deque[tuple[float, int]] = collections.deque(maxlen=history)
        # Set by monitoring: called with each new status, and with "replica"/"primary" per read.
        self.observer: Callable[[ReplicaStatus], None] | None = None
        self.route_observer: Callable[[str], None] | None = None

    # -- monitoring ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._monitor(), name="tk-replica-monitor")

    async def _monitor(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:  # an observer's bug must not stop the sampling
                log.exception("sampling the read replica failed")
            await asyncio.sleep(self.sample_interval_s)

    async def sample(self) -> ReplicaStatus:
        """Measure once: the primary's position, then what the replica has replayed."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT_S):
                async with self.primary.connect() as conn:
                    primary_lsn = parse_lsn(
                        str(await conn.scalar(text("SELECT pg_current_wal_lsn()::text")))
                    )
                self._history.append((started, primary_lsn))
                async with self.engine.connect() as conn:
                    row = (
                        await conn.execute(
                            text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
                        )
                    ).one()
        except Exception as error:
            return self._set(ReplicaStatus(state="down", message=_describe(error)))
        in_recovery, replay_text = row
        if not in_recovery:
            # Promoted: it takes writes of its own now and no longer follows this primary.
            return self._set(
                ReplicaStatus(state="promoted", message="the replica is not in recovery")
            )
        if replay_text is None:
            return self._set(ReplicaStatus(state="down", message="the replica replays nothing"))
        replay = parse_lsn(replay_text)
        lag = self._lag(replay, started)
        state: State = "ok" if lag <= self.max_lag_s else "lagging"
        return self._set(
            ReplicaStatus(state=state, lag_s=lag, replay_lsn=replay, sampled_at=started)
        )

    def _lag(self, replay: int, now: float) -> float:
        """Age of the newest primary sample the replica has replayed (0 when it has the last)."""
        for at, position in reversed(self._history):
            if position <= replay:
                return max(0.0, now - at)
        oldest = self._history[0][0] if self._history else now
        return max(now - oldest, self.max_lag_s + 1.0)  # older than we remember

    def _set(self, status: ReplicaStatus) -> ReplicaStatus:
        previous = self.status.state
        self.status = status
        if status.state != previous and not (previous == "starting" and status.state == "ok"):
            level = logging.INFO if status.state == "ok" else logging.WARNING
            log.log(
                level,
                "read replica %s%s",
                status.state,
                f": {status.message}" if status.message else "",
                extra={"replica_state": status.state},
            )
        if self.observer is not None:
            self.observer(status)
        return status

    def mark_down(self, error: BaseException) -> None:
        """A request found the replica unusable: the primary serves until the next good sample."""
        self._set(ReplicaStatus(state="down", message=_describe(error)))

    # -- routing ------------------------------------------------------------------------------

    def usable(self, fence: int | None = None) -> bool:
        """Whether a lag-tolerant read may go to the replica, given the client's fence."""
        status = self.status
        if status.state != "ok" or status.lag_s is None:
            return False
        age = time.monotonic() - status.sampled_at
        if age > STALE_AFTER_S or status.lag_s + age > self.max_lag_s:
            return False
        # The replica must have replayed this client's last write.
        return fence is None or (status.replay_lsn is not None and status.replay_lsn >= fence)

    def fence_of(self, headers: Any) -> int | None:
        """The newest write position this client must see: its cookie's or this process's."""
        fences = [self.cookie.read(_cookie(headers, FENCE_COOKIE))]
        if len(self.local_fences):
            key = credential_key(headers)
            if key is not None:
                fences.append(self.local_fences.get(key))
        known = [f for f in fences if f is not None]
        return max(known) if known else None

    def routed(self, target: str) -> None:
        if self.route_observer is not None:
            self.route_observer(target)

    async def note_write(self, scope: Scope, headers: Any) -> None:
        """After a write's COMMIT: fence this client's reads at the primary's position now."""
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT_S), self.primary.connect() as conn:
                value = await conn.scalar(text("SELECT pg_current_wal_insert_lsn()::text"))
            position = insert_position(str(value))
        except Exception as error:  # e.g. a managed service that hides WAL functions
            log.warning("could not read the WAL position after a write: %s", _describe(error))
            position = UNKNOWN_POSITION
        key = credential_key(headers)
        if key is not None:
            self.local_fences.note(key, position)
        scope[FENCE_SCOPE_KEY] = self.cookie.make(position)

    async def dispose(self) -> None:
        await self.engine.dispose()


def replica_address(url: str) -> str:
    """host:port (or the socket directory) of a database URL: a label without credentials."""
    try:
        parsed = make_url(url)
    except Exception:
        return "replica"
    host = parsed.host or str(parsed.query.get("host") or "localhost")
    return f"{host}:{parsed.port or parsed.query.get('port') or 5432}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()[:300]


class ReplicaFenceMiddleware:
    """Sets the fence cookie on the response of a write that committed (see note_write)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        async def send_with_fence(message: Message) -> None:
            if message["type"] == "http.response.start":
                fence = scope.get(FENCE_SCOPE_KEY)
                if fence is not None and message["status"] < 400:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"set-cookie", _fence_cookie_header(scope, fence)),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_fence)


def _fence_cookie_header(scope: Scope, value: str) -> bytes:
    database = getattr(scope["app"].state, "database", None)
    replica: Replica | None = getattr(database, "replica", None)
    ttl = int(replica.cookie.ttl_s) if replica is not None else 6
    secure = "; Secure" if replica is not None and replica.secure_cookies else ""
    return (
        f"{FENCE_COOKIE}={value}; Max-Age={ttl}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ).encode("latin-1")
