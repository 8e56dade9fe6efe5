"""Merge point for the parallel 0002 revisions on the web branch (no schema change).

The lead re-chains revisions when merging into main; this file can then be dropped.

Revision ID: 0003_web_merge
"""

from __future__ import annotations

revision: str = "0003_web_merge"
down_revision: tuple[str, ...] = ("0002_accounts", "0002_tickets")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
