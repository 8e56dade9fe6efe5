"""Request ids: unique within a worker and across workers, without a random read each."""

from __future__ import annotations

import multiprocessing
import re

import httpx

from tekudasai.core.middleware import new_request_id


def _child_id(queue: multiprocessing.Queue[str]) -> None:
    queue.put(new_request_id())


def test_ids_are_unique_hex_of_uuid_length() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_worker_draws_its_own_prefix() -> None:
    parent = new_request_id()
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child_id, args=(queue,))
    child.start()
    from_child = queue.get(timeout=30)
    child.join(timeout=30)
    # The counter part may coincide; the process's random half must not.
    assert from_child[:16] != parent[:16]


async def test_every_response_carries_a_fresh_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/health")
    second = await client.get("/api/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    echoed = await client.get("/api/health", headers={"X-Request-Id": "from-the-proxy"})
    assert echoed.headers["x-request-id"] == "from-the-proxy"
