"""The transition table says exactly what the contract says."""

from __future__ import annotations

import itertools

import pytest

from tekudasai.tickets import workflow
from tekudasai.tickets.errors import InvalidTransition
from tekudasai.tickets.models import TicketStatus

STATUSES = [s.value for s in TicketStatus]
# From the contract: open/in_progress/pending → any other; resolved → closed, open,
# in_progress; closed → open only.
ALLOWED = {(a, b) for a in ("open", "in_progress", "pending") for b in STATUSES if a != b} | {
    ("resolved", "closed"),
    ("resolved", "open"),
    ("resolved", "in_progress"),
    ("closed", "open"),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.permutations(STATUSES, 2)))
def test_every_pair_follows_the_contract(source: str, target: str) -> None:
    if (source, target) in ALLOWED:
        assert workflow.check_transition(source, target) is True
    else:
        with pytest.raises(InvalidTransition) as caught:
            workflow.check_transition(source, target)
        assert caught.value.code == "INVALID_TRANSITION"
        assert source in caught.value.message and target in caught.value.message


@pytest.mark.parametrize("status", STATUSES)
def test_same_status_is_a_no_op(status: str) -> None:
    assert workflow.check_transition(status, status) is False


def test_customer_reply_reopens_only_resolved_tickets() -> None:
    assert workflow.after_customer_reply("resolved") == "open"
    for status in ("open", "in_progress", "pending", "closed"):
        assert workflow.after_customer_reply(status) is None


def test_status_text() -> None:
    assert workflow.status_change_text("open", "pending") == (
        "Ticket status updated from open to pending"
    )
