"""Every model, imported once so Alembic and `Base.metadata` see the whole schema."""

from tekudasai.accounts.models import Account, RateLimitCounter, Session, User, Verification
from tekudasai.db.base import Base
from tekudasai.forms.models import Form, FormVersion
from tekudasai.jobs.models import Job
from tekudasai.live.models import TicketPresence
from tekudasai.monitoring.models import AlertState, SizeSample
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog
from tekudasai.uploads.models import TicketUpload, Upload

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
    "TicketPresence",
    "TicketUpload",
    "Upload",
    "User",
    "Verification",
]
