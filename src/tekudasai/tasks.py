"""Every job the queue knows, and every periodic job: listed here and nowhere else.

A task is `async def task(ctx: JobContext, **args)`; its name is what `enqueue` stores. This
module sits at the top (beside app and cli): it names tasks of every layer, and nothing below
imports it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping

from tekudasai.accounts import jobs as accounts_jobs
from tekudasai.automations import actions as automation_actions
from tekudasai.automations import engine as automations
from tekudasai.automations import idle as automations_idle
from tekudasai.backup import jobs as backup_jobs
from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.inbound import imap as inbound_imap
from tekudasai.jobs.mail import SEND_MAIL, send_mail_task
from tekudasai.jobs.worker import Periodic, Task, Worker, prune_task
from tekudasai.monitoring import alerts, growth, traffic
from tekudasai.notifications import handler as notifications
from tekudasai.reports import rollup as reports_rollup
from tekudasai.sla import clock as sla_clock
from tekudasai.sla import jobs as sla_jobs
from tekudasai.tickets import events
from tekudasai.webhooks import delivery as webhook_delivery
from tekudasai.webhooks import service as webhooks

PRUNE_EVERY_S = 24 * 3600.0
TRAFFIC = "monitoring.traffic"
# Tasks that read the request counters of the web processes on this node: a worker outside
# `serve` (`tekudasai worker`) has none, so it leaves them to the web workers.
NEEDS_WEB_PROCESS = frozenset({TRAFFIC})

# What reacts to ticket changes, in this order, once per event (tickets/events.py).
EVENT_HANDLERS: tuple[events.EventHandler, ...] = (
    notifications.notify,
    webhooks.on_ticket_event,
)

# What reacts to ticket changes inside their own transaction, in this order (tickets/events.py).
# The clock first: automations then see the SLA a new ticket got.
REACTORS: tuple[events.Reactor, ...] = (sla_clock.react, automations.react)


def install_reactors(settings: Settings | None = None) -> None:
    """Every process that changes tickets (the app, workers, CLI commands) calls this first.
    With its settings: the automations decrypt with their secret (else the environment's)."""
    if settings is not None:
        automation_actions.configure(settings)
    events.install_reactors(REACTORS, sla_clock.CREATION_PROBES, sla_clock.prefill)


TASKS: Mapping[str, Task] = {
    events.DISPATCH: events.dispatch_task(EVENT_HANDLERS),
    "tickets.prune_events": events.prune_task,
    SEND_MAIL: send_mail_task,
    "accounts.cleanup": accounts_jobs.cleanup_task,
    "backup.scheduled": backup_jobs.scheduled_backup,
    "monitoring.sizes": growth.sample_task,
    TRAFFIC: traffic.sample_task,
    "monitoring.alerts": alerts.evaluate_task,
    "jobs.prune": prune_task,
    inbound_imap.TASK: inbound_imap.poll_task,
    "notifications.prune": notifications.prune_task,
    webhook_delivery.DELIVER: webhook_delivery.deliver_task,
    "webhooks.prune": webhooks.prune_task,
    sla_jobs.CHECK: sla_jobs.check_task,
    sla_jobs.SWEEP: sla_jobs.sweep_task,
    automation_actions.NOTIFY_MAIL: automation_actions.notify_mail_task,
    automations_idle.TASK: automations_idle.idle_task,
    reports_rollup.FOLD: reports_rollup.fold_task,
}

PERIODIC: tuple[Periodic, ...] = (
    Periodic("backup.scheduled", backup_jobs.check_every),
    Periodic("monitoring.sizes", growth.sample_every),
    Periodic(TRAFFIC, traffic.sample_every),
    Periodic("monitoring.alerts", alerts.evaluate_every),
    Periodic("accounts.cleanup", accounts_jobs.cleanup_every),
    Periodic("jobs.prune", lambda _settings: PRUNE_EVERY_S),
    Periodic("tickets.prune_events", lambda _settings: PRUNE_EVERY_S),
    Periodic(inbound_imap.TASK, inbound_imap.poll_every),
    Periodic("notifications.prune", lambda _settings: notifications.PRUNE_EVERY_S),
    Periodic("webhooks.prune", lambda _settings: PRUNE_EVERY_S),
    Periodic(sla_jobs.SWEEP, lambda _settings: sla_jobs.SWEEP_EVERY_S),
    Periodic(automations_idle.TASK, automations_idle.every),
    Periodic(reports_rollup.FOLD, lambda _settings: reports_rollup.FOLD_EVERY_S),
)


def make_worker(database: Database, settings: Settings, **options: object) -> Worker:
    """A worker for this process with every task and periodic job."""
    install_reactors(settings)
    # locked_by names the node (TK_NODE_NAME): `jobs list` shows where a job ran.
    options.setdefault("me", f"{settings.node_name}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return Worker(database, settings, TASKS, PERIODIC, **options)  # type: ignore[arg-type]
