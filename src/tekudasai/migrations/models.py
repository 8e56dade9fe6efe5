"""Every model, imported once so Alembic and `Base.metadata` see the whole schema."""

from tekudasai.accounts.models import Account, RateLimitCounter, Session, User, Verification
from tekudasai.automations.models import Automation
from tekudasai.canned.models import CannedResponse
from tekudasai.db.base import Base
from tekudasai.forms.models import Form, FormVersion
from tekudasai.jobs.models import Job
from tekudasai.live.models import TicketPresence
from tekudasai.monitoring.models import AlertState, SizeSample
from tekudasai.notifications.models import Notification, NotificationPreference
from tekudasai.reports.models import ReportDelta, ReportRollup
from tekudasai.sla.models import BusinessCalendar, SlaPolicy
from tekudasai.teams.models import Team, TeamMember
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog
from tekudasai.uploads.models import TicketUpload, Upload
from tekudasai.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "Account",
    "AlertState",
    "Automation",
    "Base",
    "BusinessCalendar",
    "CannedResponse",
    "Form",
    "FormVersion",
    "Job",
    "Notification",
    "NotificationPreference",
    "RateLimitCounter",
    "ReportDelta",
    "ReportRollup",
    "Session",
    "SizeSample",
    "SlaPolicy",
    "Team",
    "TeamMember",
    "Ticket",
    "TicketComment",
    "TicketLog",
    "TicketPresence",
    "TicketUpload",
    "Upload",
    "User",
    "Verification",
    "Webhook",
    "WebhookDelivery",
]
