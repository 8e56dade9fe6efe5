"""Every model, imported once so Alembic and `Base.metadata` see the whole schema."""

from tekudasai.accounts.models import Account, RateLimitCounter, Session, User, Verification
from tekudasai.db.base import Base
from tekudasai.forms.models import Form, FormVersion
from tekudasai.jobs.models import Job
from tekudasai.monitoring.models import AlertState, SizeSample
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog
from tekudasai.uploads.models import TicketUpload, Upload
from tekudasai.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "Account",
    "AlertState",
    "Base",
    "Form",
    "FormVersion",
    "Job",
    "RateLimitCounter",
    "Session",
    "SizeSample",
    "Ticket",
    "TicketComment",
    "TicketLog",
    "TicketUpload",
    "Upload",
    "User",
    "Verification",
    "Webhook",
    "WebhookDelivery",
]
