"""Admin API for webhooks (`admin` scope for tokens): thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from tekudasai.accounts.dependencies import Admin, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, ok
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.session import DbSession
from tekudasai.webhooks import service
from tekudasai.webhooks.schemas import (
    CreatedWebhook,
    DeletedWebhook,
    DeliveryList,
    OneDelivery,
    OneWebhook,
    WebhookIn,
    WebhookList,
    WebhookPatch,
)

router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES, route_class=DirectRoute
)
ADMIN = scopes("admin")


@router.get("", openapi_extra=ADMIN, response_model=WebhookList)
async def list_webhooks(admin: Admin, db: DbSession) -> dict[str, Any]:
    return ok([service.public_webhook(h) for h in await service.list_webhooks(db)])


@router.post("", openapi_extra=ADMIN, response_model=CreatedWebhook)
async def create_webhook(
    body: WebhookIn,
    admin: Admin,
    db: DbSession,
    cipher: Cipher,
    settings: AppSettings,
    response: Response,
) -> dict[str, Any]:
    """The `secret` (`whsec_…`) is in this answer only; it is stored encrypted."""
    response.headers["Cache-Control"] = "no-store"  # the body carries the secret
    hook, secret = await service.create_webhook(
        db,
        cipher,
        url=body.url,
        events=body.events,
        enabled=body.enabled,
        include_internal=body.include_internal,
        created_by=admin.user.id,
        allow_private=settings.webhook_allow_private,
    )
    return ok(service.public_webhook(hook, secret))


@router.get("/{webhook_id}", openapi_extra=ADMIN, response_model=OneWebhook)
async def get_webhook(webhook_id: str, admin: Admin, db: DbSession) -> dict[str, Any]:
    return ok(service.public_webhook(await service.get_webhook(db, webhook_id)))


@router.patch("/{webhook_id}", openapi_extra=ADMIN, response_model=OneWebhook)
async def update_webhook(
    webhook_id: str, body: WebhookPatch, admin: Admin, db: DbSession, settings: AppSettings
) -> dict[str, Any]:
    hook = await service.update_webhook(
        db,
        webhook_id,
        url=body.url,
        events=body.events,
        enabled=body.enabled,
        include_internal=body.include_internal,
        allow_private=settings.webhook_allow_private,
    )
    return ok(service.public_webhook(hook))


@router.delete("/{webhook_id}", openapi_extra=ADMIN, response_model=DeletedWebhook)
async def delete_webhook(webhook_id: str, admin: Admin, db: DbSession) -> dict[str, Any]:
    await service.delete_webhook(db, webhook_id)
    return ok({"id": webhook_id, "deleted": True})


@router.get("/{webhook_id}/deliveries", openapi_extra=ADMIN, response_model=DeliveryList)
async def list_deliveries(
    webhook_id: str,
    admin: Admin,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = service.DELIVERIES_PAGE,
    before: Annotated[int | None, Query(ge=1, description="ids below this (next page)")] = None,
) -> dict[str, Any]:
    """Newest first."""
    rows = await service.list_deliveries(db, webhook_id, limit=limit, before=before)
    return ok([service.public_delivery(r) for r in rows])


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    openapi_extra=ADMIN,
    response_model=OneDelivery,
)
async def retry_delivery(
    webhook_id: str,
    delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    admin: Admin,
    db: DbSession,
) -> dict[str, Any]:
    """Send a failed (or delivered) delivery again, with a fresh series of tries."""
    return ok(service.public_delivery(await service.retry_delivery(db, webhook_id, delivery_id)))


@router.post("/{webhook_id}/test", openapi_extra=ADMIN, response_model=OneDelivery)
async def send_test_event(webhook_id: str, admin: Admin, db: DbSession) -> dict[str, Any]:
    """Queue a `webhook.test` delivery."""
    return ok(service.public_delivery(await service.send_test_event(db, webhook_id)))
