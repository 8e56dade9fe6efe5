"""/admin/webhooks: list, create (secret shown once), enable/disable, delete, test events, and
each webhook's deliveries with retry. Pages call the webhooks service directly."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.core.errors import AppError
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.session import DbSession
from tekudasai.web.deps import PageAdmin, PostedForm
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render
from tekudasai.webhooks import service

router = APIRouter(include_in_schema=False)
PATH = "/admin/webhooks"


def _view(hook: Any) -> dict[str, Any]:
    return service.public_webhook(hook)


async def _list_page(
    request: Request,
    db: DbSession,
    *,
    created: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    hooks = [_view(h) for h in await service.list_webhooks(db)]
    return render(
        request,
        "admin/webhooks.html",
        {
            "hooks": hooks,
            "all_events": service.EVENTS,
            "created": created,
            "errors": errors or {},
            "error": error,
            "values": values or {"url": "", "events": [], "include_internal": False},
        },
        status=status,
    )


def _back(request: Request, to: str, message: str, kind: str = "success") -> Response:
    redirect = RedirectResponse(to, status_code=303)
    flash(request, redirect, message, kind)  # type: ignore[arg-type]
    return redirect


@router.get(PATH)
async def webhooks_page(request: Request, admin: PageAdmin, db: DbSession) -> Response:
    return await _list_page(request, db)


@router.post(PATH)
async def create_webhook(
    request: Request,
    admin: PageAdmin,
    db: DbSession,
    posted: PostedForm,
    cipher: Cipher,
    settings: AppSettings,
) -> Response:
    values: dict[str, Any] = {
        "url": str(posted.get("url", "")),
        "events": [str(e) for e in posted.getlist("events")],
        "include_internal": posted.get("include_internal") == "on",
    }
    try:
        async with db.begin_nested():  # a refused webhook leaves nothing behind
            hook, secret = await service.create_webhook(
                db,
                cipher,
                url=values["url"],
                events=values["events"],
                include_internal=values["include_internal"],
                created_by=admin.user.id,
                allow_private=settings.webhook_allow_private,
            )
    except AppError as exc:
        errors = {str(e["field"]): str(e["message"]) for e in exc.errors or []}
        return await _list_page(
            request,
            db,
            errors=errors,
            error=None if errors else exc.message,
            values=values,
            status=exc.status_code,
        )
    # Rendered, not redirected: the secret is shown in this answer only (pages are no-store).
    return await _list_page(request, db, created={**_view(hook), "secret": secret})


@router.post(PATH + "/{webhook_id}/toggle")
async def toggle_webhook(
    request: Request,
    webhook_id: str,
    admin: PageAdmin,
    db: DbSession,
    posted: PostedForm,
    settings: AppSettings,
) -> Response:
    hook = await service.get_webhook(db, webhook_id)
    hook = await service.update_webhook(
        db, webhook_id, enabled=not hook.enabled, allow_private=settings.webhook_allow_private
    )
    return _back(request, PATH, "Webhook enabled." if hook.enabled else "Webhook disabled.")


@router.post(PATH + "/{webhook_id}/delete")
async def delete_webhook(
    request: Request, webhook_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await service.delete_webhook(db, webhook_id)
    return _back(request, PATH, "Webhook deleted.")


@router.post(PATH + "/{webhook_id}/test")
async def send_test(
    request: Request, webhook_id: str, admin: PageAdmin, db: DbSession, posted: PostedForm
) -> Response:
    await service.send_test_event(db, webhook_id)
    return _back(request, f"{PATH}/{webhook_id}", "Test event queued.")


@router.get(PATH + "/{webhook_id}")
async def deliveries_page(
    request: Request, webhook_id: str, admin: PageAdmin, db: DbSession
) -> Response:
    hook = await service.get_webhook(db, webhook_id)
    rows = await service.list_deliveries(db, webhook_id, limit=100)
    return render(
        request,
        "admin/webhook_deliveries.html",
        {"hook": _view(hook), "deliveries": [service.public_delivery(r) for r in rows]},
    )


@router.post(PATH + "/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    request: Request,
    webhook_id: str,
    delivery_id: int,
    admin: PageAdmin,
    db: DbSession,
    posted: PostedForm,
) -> Response:
    to = f"{PATH}/{webhook_id}"
    try:
        await service.retry_delivery(db, webhook_id, delivery_id)
    except service.DeliveryPending as exc:
        return _back(request, to, exc.message, "error")
    return _back(request, to, "Delivery queued again.")
