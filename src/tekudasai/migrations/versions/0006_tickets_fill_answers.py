"""tickets: every input element of the ticket's form version has a key in form_response

The original stored every answer, an unanswered one as "", and its clients read every answer as
a string or an upload object (a missing key crashes the ticket page). Rows saved before this
revision left unanswered and hidden elements out; this fills them in from the form version the
ticket was filed with. Answers already present are kept as they are.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One blank per named element of each version (text panels have no answer); the ticket's own
    # answers win over the blanks. Rows that lack no key are left alone (no trigger work).
    op.execute(
        """
        UPDATE tickets AS t
        SET form_response = blanks.answers || t.form_response
        FROM (
            SELECT v.form_id, v.version, jsonb_object_agg(e ->> 'name', '') AS answers
            FROM form_versions AS v
            CROSS JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(v.elements) = 'array' THEN v.elements ELSE '[]' END
            ) AS e
            WHERE jsonb_typeof(e) = 'object'
              AND coalesce(e ->> 'type', '') <> 'text-panel'
              AND coalesce(e ->> 'name', '') <> ''
            GROUP BY v.form_id, v.version
        ) AS blanks
        WHERE blanks.form_id = t.form_id
          AND blanks.version = t.form_version
          AND jsonb_typeof(t.form_response) = 'object'
          AND NOT t.form_response ?& ARRAY(SELECT jsonb_object_keys(blanks.answers))
        """
    )


def downgrade() -> None:
    # Before this revision an empty answer was never stored (the engine skipped it), so every
    # "" is a blank this revision's code wrote: dropping them restores the earlier shape exactly.
    op.execute(
        """
        UPDATE tickets
        SET form_response = (
            SELECT coalesce(jsonb_object_agg(kv.key, kv.value), '{}'::jsonb)
            FROM jsonb_each(form_response) AS kv
            WHERE kv.value <> '""'::jsonb
        )
        WHERE jsonb_typeof(form_response) = 'object'
          AND EXISTS (
              SELECT 1 FROM jsonb_each(form_response) AS kv WHERE kv.value = '""'::jsonb
          )
        """
    )
