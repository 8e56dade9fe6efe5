"""Merge point for the monitoring branch's 0002 revision and the web branch's heads (no schema
change). The lead re-chains revisions when merging into main; this file can then be dropped.

Revision ID: 0004_monitoring_merge
"""

from __future__ import annotations

revision: str = "0004_monitoring_merge"
down_revision: tuple[str, ...] = ("0003_web_merge", "0002_monitoring")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
