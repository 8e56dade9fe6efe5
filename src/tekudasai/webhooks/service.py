"""Webhooks: create, change, delete, the deliveries log, manual retry and test events; and the
ticket-event handler that turns events into deliveries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.keys import refresh_current_key
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import AppError, NotFound, ValidationFailed
from tekudasai.core.schemas import iso
from tekudasai.db.raw import RawStatement
from tekudasai.jobs.queue import CHANNEL as JOBS_CHANNEL
from tekudasai.jobs.worker import JobContext
from tekudasai.tickets.events import TicketEvent
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog
from tekudasai.webhooks import signing, urlguard
from tekudasai.webhooks.delivery import DELIVER, MAX_TRIES, SECRET_CONTEXT, enqueue_delivery
from tekudasai.webhooks.models import Webhook, WebhookDelivery

EVENTS = (
    "ticket.created",
    "ticket.updated",
    "ticket.status_changed",
    "ticket.assigned",
    "comment.created",
    "sla.warning",
    "sla.breached",
)
TEST_EVENT = "webhook.test"
MAX_WEBHOOKS = 100
DELIVERIES_PAGE = 50
KEEP_DELIVERIES = timedelta(days=30)


class WebhookNotFound(NotFound):
    message = "No such webhook."


class DeliveryNotFound(NotFound):
    message = "No such delivery."


class DeliveryPending(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "The delivery is still pending: it is tried again by itself."


def check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        message = (
            f"unknown events: {', '.join(unknown)}" if unknown else "choose at least one event"
        )
        raise ValidationFailed(
            f"events: {message}", errors=[{"field": "events", "message": message}]
        )
    return [e for e in EVENTS if e in set(events)]


def public_webhook(hook: Webhook, secret: str | None = None) -> dict[str, Any]:
    checked = urlguard.check_syntax(hook.url)
    out: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "host": checked.display_host,
        "unusualPort": checked.unusual_port,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "includeInternal": hook.include_internal,
        "createdAt": iso(hook.created_at),
        "updatedAt": iso(hook.updated_at),
    }
    if secret is not None:
        out["secret"] = secret  # only in the answer to its creation
    return out


def public_delivery(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "msgId": row.msg_id,
        "eventType": row.event_type,
        "ticketId": row.ticket_id,
        "status": row.status,
        "tries": row.attempts,
        "responseStatus": row.response_status,
        "responseBody": row.response_body,
        "error": row.error,
        "durationMs": row.duration_ms,
        "createdAt": iso(row.created_at),
        "lastAttemptAt": iso(row.last_attempt_at) if row.last_attempt_at else None,
        "deliveredAt": iso(row.delivered_at) if row.delivered_at else None,
    }


async def list_webhooks(db: AsyncSession) -> list[Webhook]:
    return list((await db.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id))).all())


async def get_webhook(db: AsyncSession, webhook_id: str) -> Webhook:
    hook = await db.get(Webhook, webhook_id)
    if hook is None:
        raise WebhookNotFound()
    return hook


async def create_webhook(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    url: str,
    events: list[str],
    enabled: bool = True,
    include_internal: bool = False,
    created_by: str | None,
    allow_private: bool,
) -> tuple[Webhook, str]:
    """The new webhook and its secret (returned this once; stored encrypted)."""
    # Both fields are checked, so a form can show every message at once.
    errors: list[dict[str, Any]] = []
    chosen: list[str] = []
    try:
        chosen = check_events(events)
    except ValidationFailed as exc:
        errors += exc.errors or []
    try:
        checked = await urlguard.check_url(url, allow_private=allow_private)
    except ValidationFailed as exc:
        errors += exc.errors or []
    if errors:
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(text, errors=errors)
    if (await db.scalar(select(func.count()).select_from(Webhook)) or 0) >= MAX_WEBHOOKS:
        raise ValidationFailed(f"At most {MAX_WEBHOOKS} webhooks.")
    secret = signing.new_secret()
    await refresh_current_key(db, cipher)
    hook = Webhook(
        url=checked.url,
        events=chosen,
        enabled=enabled,
        include_internal=include_internal,
        secret_ciphertext=cipher.encrypt(secret, context=SECRET_CONTEXT),
        created_by=created_by,
    )
    db.add(hook)
    await db.flush()
    return hook, secret


async def update_webhook(
    db: AsyncSession,
    webhook_id: str,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
    include_internal: bool | None = None,
    allow_private: bool,
) -> Webhook:
    hook = await get_webhook(db, webhook_id)
    if url is not None:
        hook.url = (await urlguard.check_url(url, allow_private=allow_private)).url
    if events is not None:
        hook.events = check_events(events)
    if enabled is not None:
        hook.enabled = enabled
    if include_internal is not None:
        hook.include_internal = include_internal
    await db.flush()
    await db.refresh(hook)
    return hook


async def delete_webhook(db: AsyncSession, webhook_id: str) -> None:
    hook = await get_webhook(db, webhook_id)
    await db.delete(hook)
    await db.flush()


async def list_deliveries(
    db: AsyncSession, webhook_id: str, *, limit: int = DELIVERIES_PAGE, before: int | None = None
) -> list[WebhookDelivery]:
    await get_webhook(db, webhook_id)
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return list((await db.scalars(query)).all())


_ACTIVE_JOB = text(
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'running') "
    f"AND name = '{DELIVER}' AND (args->>'deliveryId')::bigint = CAST(:id AS bigint))"
)


async def retry_delivery(db: AsyncSession, webhook_id: str, delivery_id: int) -> WebhookDelivery:
    """Send a finished (failed or delivered) delivery again with a fresh series of tries; a
    pending one only when no job holds it (its job was lost)."""
    row = await db.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None or row.webhook_id != webhook_id:
        raise DeliveryNotFound()
    if row.status == "pending":
        held = row.lease_until is not None and row.lease_until > datetime.now(UTC)
        if held or await db.scalar(_ACTIVE_JOB, {"id": delivery_id}):
            raise DeliveryPending()  # its job retries it by itself
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(status="pending", attempts=0, leased_by=None, lease_until=None)
    )
    await enqueue_delivery(db, delivery_id)
    await db.refresh(row)
    return row


def _body(event_type: str, timestamp: datetime, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": iso(timestamp), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


# The deliveries of one event and their jobs in one statement (one round trip for any number
# of webhooks); the NOTIFY wakes the workers on commit, as `enqueue` does.
_ADD = text(
    "WITH added AS ("
    " INSERT INTO webhook_deliveries (webhook_id, event_id, ticket_id, event_type, msg_id, body)"
    " SELECT hook, CAST(:event_id AS bigint), CAST(:ticket_id AS integer), :event_type, msg,"
    " :body FROM unnest(CAST(:hooks AS text[]), CAST(:msgs AS text[])) AS t(hook, msg)"
    " RETURNING id),"
    " queued AS ("
    " INSERT INTO jobs (name, args, max_attempts)"
    " SELECT :job, jsonb_build_object('deliveryId', added.id), :attempts FROM added"
    " RETURNING args)"
    " SELECT (args->>'deliveryId')::bigint AS id, pg_notify(:channel, '') FROM queued"
)


async def _add_deliveries(
    db: AsyncSession,
    webhook_ids: list[str],
    *,
    event_type: str,
    body: str,
    ticket_id: int | None = None,
    event_id: int | None = None,
) -> list[int]:
    rows = await db.execute(
        _ADD,
        {
            "hooks": webhook_ids,
            "msgs": [signing.new_msg_id() for _ in webhook_ids],
            "event_id": event_id,
            "ticket_id": ticket_id,
            "event_type": event_type,
            "body": body,
            "job": DELIVER,
            "attempts": MAX_TRIES,
            "channel": JOBS_CHANNEL,
        },
    )
    return [int(r.id) for r in rows]


async def send_test_event(db: AsyncSession, webhook_id: str) -> WebhookDelivery:
    hook = await get_webhook(db, webhook_id)
    now = datetime.now(UTC)
    data = {"webhookId": hook.id, "message": "A test event from Te Kudasai."}
    [delivery_id] = await _add_deliveries(
        db, [hook.id], event_type=TEST_EVENT, body=_body(TEST_EVENT, now, data)
    )
    row = await db.get(WebhookDelivery, delivery_id)
    assert row is not None
    return row


async def _event_data(db: AsyncSession, event: TicketEvent) -> dict[str, Any] | None:
    data: dict[str, Any] = {"ticketId": event.ticket_id, "eventId": event.id}
    data["actorId"] = event.actor_id
    data.update(event.data)
    # Plain column reads: an ORM entity load costs more than the rest of the handler.
    if event.type.value == "ticket.created":
        ticket = (
            await db.execute(
                select(
                    Ticket.id,
                    Ticket.summary,
                    Ticket.status,
                    Ticket.form_id,
                    Ticket.reporter_id,
                    Ticket.assignee_id,
                    Ticket.created_at,
                ).where(Ticket.id == event.ticket_id)
            )
        ).first()
        if ticket is None:
            return None
        data["ticket"] = {
            "id": ticket.id,
            "summary": ticket.summary,
            "status": ticket.status,
            "formId": ticket.form_id,
            "reporterId": ticket.reporter_id,
            "assigneeId": ticket.assignee_id,
            "createdAt": iso(ticket.created_at),
        }
        # The ticket as it was filed, not as it is when the queue gets here (it may have been
        # worked on since): the creation row of the audit trail keeps that snapshot.
        filed = await db.scalar(
            select(TicketLog.details)
            .where(TicketLog.ticket_id == event.ticket_id, TicketLog.action_type == "create")
            .order_by(TicketLog.id)
            .limit(1)
        )
        snapshot = (filed or {}).get("ticket") or {}
        for key in ("summary", "status", "formId", "reporterId", "assigneeId"):
            if key in snapshot:
                data["ticket"][key] = snapshot[key]
    elif event.type.value == "comment.created":
        comment = (
            await db.execute(
                select(
                    TicketComment.id,
                    TicketComment.body,
                    TicketComment.internal,
                    TicketComment.author_id,
                    TicketComment.created_at,
                ).where(TicketComment.id == int(event.data.get("commentId", 0)))
            )
        ).first()
        if comment is None:
            return None
        data["comment"] = {
            "id": comment.id,
            "body": comment.body,
            "internal": comment.internal,
            "authorId": comment.author_id,
            "createdAt": iso(comment.created_at),
        }
    return data


# Asked for every ticket event, and most desks have no webhook: straight to the driver
# (db/raw.py), where through the ORM the question cost more than its answer.
_WANTED_BY = RawStatement(
    text(
        "SELECT id, include_internal FROM webhooks"
        " WHERE enabled AND events @> ARRAY[CAST(:event_type AS text)]"
    )
)


async def on_ticket_event(db: AsyncSession, event: TicketEvent, ctx: JobContext) -> None:
    """EVENT_HANDLERS entry: one delivery (and its job) per enabled webhook that wants it."""
    hooks = await _WANTED_BY.fetch(db, event_type=event.type.value)
    targets = [h["id"] for h in hooks if h["include_internal"] or not event.internal]
    if not targets:
        return
    data = await _event_data(db, event)
    if data is None:
        return
    body = _body(event.type.value, event.created_at, data)
    await _add_deliveries(
        db,
        targets,
        event_type=event.type.value,
        body=body,
        ticket_id=event.ticket_id,
        event_id=event.id,
    )


async def emit(
    db: AsyncSession, *, event_type: str, ticket_id: int | None, data: dict[str, Any]
) -> int:
    """For events that are not ticket events (`sla.warning`, `sla.breached`): queue a delivery
    to every enabled webhook that wants `event_type`, in the caller's transaction; returns how
    many. Without a ticket event id they are not ordered against the ticket's other events."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    targets = list(
        await db.scalars(
            select(Webhook.id).where(Webhook.enabled, Webhook.events.contains([event_type]))
        )
    )
    if not targets:
        return 0
    body = _body(event_type, datetime.now(UTC), {"ticketId": ticket_id, **data})
    return len(
        await _add_deliveries(db, targets, event_type=event_type, body=body, ticket_id=ticket_id)
    )


async def prune_task(ctx: JobContext) -> None:
    """Periodic: forget finished deliveries after KEEP_DELIVERIES."""
    async with ctx.database.sessionmaker() as session, session.begin():
        await session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.created_at < func.now() - KEEP_DELIVERIES,
                WebhookDelivery.status != "pending",
            )
        )
