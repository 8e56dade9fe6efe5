"""`POST /api/inbound/email`: a raw message from an MTA pipe or a mail provider's raw-MIME
forwarding, behind its own bearer token (`TK_INBOUND_MAIL_TOKEN`); absent without it."""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field

from tekudasai.core.csrf import bearer_token
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.errors import AppError, NotFound, PayloadTooLarge, Unauthorized
from tekudasai.core.schemas import ERROR_RESPONSES, CamelModel, Envelope, ok
from tekudasai.core.state import AppSettings
from tekudasai.db.session import DbSession
from tekudasai.inbound import service
from tekudasai.inbound.message import MAX_MESSAGE_BYTES, Unparseable
from tekudasai.uploads.dependencies import UploadStorage

router = APIRouter(
    prefix="/inbound", tags=["inbound mail"], responses=ERROR_RESPONSES, route_class=DirectRoute
)

PATH = "/inbound/email"
BODY_LIMIT = MAX_MESSAGE_BYTES


class InvalidMessage(AppError):
    status_code = 400
    code = "INVALID_MESSAGE"
    message = "The body is not an e-mail message."


class InboundOut(CamelModel):
    action: Literal["comment", "ticket", "ignored"]
    ticket_id: int | None = Field(default=None, description="absent when no ticket was touched")
    reason: str | None = Field(default=None, description="why it was ignored (or how filed)")


@router.post(
    "/email",
    response_model=Envelope[InboundOut],
    response_model_exclude_none=True,
    openapi_extra={
        "requestBody": {
            "required": True,
            # message/rfc822 as the contract says; any raw body is read the same way.
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("message/rfc822", "application/octet-stream")
            },
        }
    },
)
async def receive_email(
    request: Request, db: DbSession, settings: AppSettings, storage: UploadStorage
) -> dict[str, object]:
    """One raw RFC 5322 message as the body (`message/rfc822`), `Authorization: Bearer
    <TK_INBOUND_MAIL_TOKEN>`. Answers what became of it: a comment, a ticket, or ignored (with
    the reason). Not found while TK_INBOUND_MAIL_TOKEN is unset."""
    expected = settings.inbound_mail_token
    if not expected:
        raise NotFound()
    sent = bearer_token(request.headers.get("authorization"))
    if sent is None or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Unauthorized("Send Authorization: Bearer <TK_INBOUND_MAIL_TOKEN>.")
    raw = await request.body()
    try:
        mail = service.read(raw)
    except service.TooLarge as exc:
        raise PayloadTooLarge(f"The message is {exc.reason}.") from None
    except Unparseable as exc:
        raise InvalidMessage(f"Not a parseable e-mail message: {exc.reason}.") from None
    inbound = service.Inbound(
        database=request.app.state.database,
        settings=settings,
        cipher=request.app.state.cipher,
        storage=storage,
    )
    outcome = await service.process(db, inbound, mail)
    return ok(outcome.view())
