"""The hub's fan-out and heartbeat, on subscribers without a server: a change reaches every
stream that may see it, a slice of streams at a time, so that other ready work (the request
that caused the change) runs between slices instead of after every stream's write."""

from __future__ import annotations

import asyncio

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.live import feed
from tekudasai.live.hub import FAN_OUT_SLICE, HEARTBEAT, Hub


def _hub(settings: Settings, database: Database) -> Hub:
    return Hub(database, PiiCipher(settings.master_secret()), settings)


def _event(event_id: int, *, internal: bool = False) -> feed.LiveEvent:
    return feed.LiveEvent(
        id=event_id,
        ticket_id=1,
        reporter_id="customer",
        internal=internal,
        staff_only=False,
        user_id=None,
        chunk=feed.sse("comment.created", {"id": event_id}, event_id),
    )


async def test_fan_out_reaches_every_allowed_stream_and_lets_other_work_run_between_slices(
    settings: Settings, database: Database
) -> None:
    hub = _hub(settings, database)
    agents = [
        hub.subscribe(user_id=f"agent-{n}", role="agent", session_id=f"s{n}", token_id=None)
        for n in range(FAN_OUT_SLICE * 3 + 5)
    ]
    customer = hub.subscribe(user_id="customer", role="user", session_id="c", token_id=None)
    stranger = hub.subscribe(user_id="stranger", role="user", session_id="x", token_id=None)
    seen_midway: list[int] = []

    def other_work() -> None:  # ready when the fan-out starts, like the causing request
        seen_midway.append(sum(not s.queue.empty() for s in hub.subscribers))

    asyncio.get_running_loop().call_soon(other_work)
    await hub.fan_out(_event(7))
    assert 0 < seen_midway[0] <= FAN_OUT_SLICE
    assert all(s.queue.get_nowait() == (7, _event(7).chunk) for s in [*agents, customer])
    assert stranger.queue.empty()
    # Found by index: the stranger's stream is not even looked at.
    assert set(hub.audience(_event(7))) == {*agents, customer}

    await hub.fan_out(_event(8, internal=True))  # internal: staff only
    assert all(not s.queue.empty() for s in agents)
    assert customer.queue.empty() and stranger.queue.empty()


async def test_heartbeat_goes_to_idle_streams_and_a_full_queue_drops_its_stream(
    settings: Settings, database: Database
) -> None:
    hub = _hub(settings.model_copy(update={"live_queue_size": 2}), database)
    idle = hub.subscribe(user_id="a", role="agent", session_id="s1", token_id=None)
    busy = hub.subscribe(user_id="b", role="agent", session_id="s2", token_id=None)
    busy.offer((1, b"x"))
    hub.heartbeat()
    assert idle.queue.get_nowait() == (None, HEARTBEAT)
    assert busy.queue.qsize() == 1  # it has something to send already
    busy.offer((2, b"y"))
    busy.offer((3, b"z"))  # a third: over the queue's size
    assert busy.closed == "slow"
    hub.unsubscribe(busy)
    assert hub.dropped == 1
