"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25

The whole schema of Te Kudasai, plus what autogenerate cannot express: the pg_trgm
extension and the triggers that keep tickets.search_vector current.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SEARCH_VECTOR_SQL = [
    """
    CREATE FUNCTION tk_ticket_text_vector(p_summary text, p_response jsonb)
    RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT setweight(to_tsvector('simple'::regconfig, coalesce(p_summary, '')), 'A')
            || setweight(jsonb_to_tsvector('simple'::regconfig,
                   coalesce(p_response, '{}'::jsonb), '["string"]'), 'B')
    $$
    """,
    """
    CREATE FUNCTION tk_ticket_search_vector(
        p_id integer, p_summary text, p_response jsonb
    ) RETURNS tsvector LANGUAGE sql STABLE AS $$
        SELECT tk_ticket_text_vector(p_summary, p_response)
            || setweight(to_tsvector('simple', coalesce(
                   (SELECT string_agg(body, ' ' ORDER BY id) FROM ticket_comments
                     WHERE ticket_id = p_id AND NOT internal), '')), 'C')
    $$
    """,
    """
    CREATE FUNCTION tk_tickets_search_vector_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search_vector := tk_ticket_search_vector(NEW.id, NEW.summary, NEW.form_response);
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER tickets_search_vector BEFORE INSERT OR UPDATE OF summary, form_response
    ON tickets FOR EACH ROW EXECUTE FUNCTION tk_tickets_search_vector_trigger()
    """,
    """
    CREATE FUNCTION tk_comments_search_vector_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        affected integer := coalesce(NEW.ticket_id, OLD.ticket_id);
    BEGIN
        UPDATE tickets SET search_vector = tk_ticket_search_vector(id, summary, form_response)
         WHERE id = affected;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER ticket_comments_search_vector AFTER INSERT OR UPDATE OR DELETE
    ON ticket_comments FOR EACH ROW EXECUTE FUNCTION tk_comments_search_vector_trigger()
    """,
]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "alert_states",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_states")),
    )
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_counters")),
        prefixes=["UNLOGGED"],
    )
    op.create_index(
        op.f("ix_rate_limit_counters_expires_at"),
        "rate_limit_counters",
        ["expires_at"],
        unique=False,
    )
    op.create_table(
        "size_samples",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "sampled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("database_bytes", sa.BigInteger(), nullable=False),
        sa.Column("tables", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_size_samples")),
    )
    op.create_index(
        op.f("ix_size_samples_sampled_at"), "size_samples", ["sampled_at"], unique=False
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("email_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("email_index", sa.LargeBinary(), nullable=False),
        sa.Column("name_index", sa.LargeBinary(), nullable=False),
        sa.Column("pii_key_id", sa.SmallInteger(), nullable=False),
        sa.Column("email_verified", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), server_default="user", nullable=False),
        sa.Column("banned", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("ban_reason", sa.Text(), nullable=True),
        sa.Column("ban_expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('user', 'agent', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email_index", name=op.f("uq_users_email_index")),
    )
    op.create_index(op.f("ix_users_name_index"), "users", ["name_index"], unique=False)
    op.create_index(op.f("ix_users_pii_key_id"), "users", ["pii_key_id"], unique=False)
    op.create_index(op.f("ix_users_role"), "users", ["role"], unique=False)
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("access_token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("id_token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_accounts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_user_id"), "accounts", ["user_id"], unique=False)
    op.create_index(
        "uq_accounts_provider_account", "accounts", ["provider_id", "account_id"], unique=True
    )
    op.create_table(
        "forms",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("elements", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_forms_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
    )
    op.create_index(op.f("ix_forms_creator_id"), "forms", ["creator_id"], unique=False)
    op.create_index(op.f("ix_forms_disabled"), "forms", ["disabled"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remember_me", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("ip_address", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("impersonated_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["impersonated_by"],
            ["users.id"],
            name=op.f("fk_sessions_impersonated_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"], unique=False)
    op.create_index(
        op.f("ix_sessions_impersonated_by"), "sessions", ["impersonated_by"], unique=False
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_table(
        "ticket_logs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("action_type", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("internal", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action_type IN ('create', 'update', 'assign', 'unassign', 'open_form', 'comment', 'delete')",
            name=op.f("ck_ticket_logs_action_type"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ticket_logs_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_logs")),
    )
    op.create_index("ix_ticket_logs_ticket_id_id", "ticket_logs", ["ticket_id", "id"], unique=False)
    op.create_index(op.f("ix_ticket_logs_user_id"), "ticket_logs", ["user_id"], unique=False)
    op.create_table(
        "uploads",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("uploader_id", sa.Text(), nullable=True),
        sa.Column("original_name", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["users.id"],
            name=op.f("fk_uploads_uploader_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_uploads_storage_key")),
    )
    op.create_index(op.f("ix_uploads_created_at"), "uploads", ["created_at"], unique=False)
    op.create_index(op.f("ix_uploads_uploader_id"), "uploads", ["uploader_id"], unique=False)
    op.create_table(
        "verifications",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'reset_password')", name=op.f("ck_verifications_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_verifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_verifications_token_hash")),
    )
    op.create_index(op.f("ix_verifications_user_id"), "verifications", ["user_id"], unique=False)
    op.create_table(
        "form_versions",
        sa.Column("form_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("elements", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_form_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["form_id"],
            ["forms.id"],
            name=op.f("fk_form_versions_form_id_forms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("form_id", "version", name=op.f("pk_form_versions")),
    )
    op.create_index(
        op.f("ix_form_versions_created_by"), "form_versions", ["created_by"], unique=False
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("reporter_id", sa.Text(), nullable=False),
        sa.Column("assignee_id", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("form_id", sa.Text(), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("form_response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("form_open", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'in_progress', 'pending', 'resolved', 'closed')",
            name=op.f("ck_tickets_status"),
        ),
        sa.CheckConstraint(
            "length(summary) BETWEEN 1 AND 500", name=op.f("ck_tickets_summary_length")
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_tickets_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["form_id", "form_version"],
            ["form_versions.form_id", "form_versions.version"],
            name="fk_tickets_form_version_form_versions",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_tickets_form_id_forms"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["users.id"],
            name=op.f("fk_tickets_reporter_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    op.create_index("ix_tickets_assignee_id_id", "tickets", ["assignee_id", "id"], unique=False)
    op.create_index(
        "ix_tickets_form_id_form_version", "tickets", ["form_id", "form_version"], unique=False
    )
    op.create_index("ix_tickets_reporter_id_id", "tickets", ["reporter_id", "id"], unique=False)
    op.create_index(
        "ix_tickets_reporter_id_status_id", "tickets", ["reporter_id", "status", "id"], unique=False
    )
    op.create_index(
        "ix_tickets_search_vector",
        "tickets",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_tickets_status_id", "tickets", ["status", "id"], unique=False)
    op.create_index(
        "ix_tickets_summary_trgm",
        "tickets",
        ["summary"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"summary": "gin_trgm_ops"},
    )
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("internal", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "length(body) BETWEEN 1 AND 20000", name=op.f("ck_ticket_comments_body_length")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_ticket_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_comments_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_comments")),
    )
    op.create_index(
        op.f("ix_ticket_comments_author_id"), "ticket_comments", ["author_id"], unique=False
    )
    op.create_index(
        "ix_ticket_comments_ticket_id_id", "ticket_comments", ["ticket_id", "id"], unique=False
    )
    op.create_table(
        "ticket_uploads",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_uploads_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            name=op.f("fk_ticket_uploads_upload_id_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "upload_id", name=op.f("pk_ticket_uploads")),
    )
    op.create_index(
        op.f("ix_ticket_uploads_upload_id"), "ticket_uploads", ["upload_id"], unique=False
    )
    for statement in SEARCH_VECTOR_SQL:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_uploads_upload_id"), table_name="ticket_uploads")
    op.drop_table("ticket_uploads")
    op.drop_index("ix_ticket_comments_ticket_id_id", table_name="ticket_comments")
    op.drop_index(op.f("ix_ticket_comments_author_id"), table_name="ticket_comments")
    op.drop_table("ticket_comments")
    op.drop_index(
        "ix_tickets_summary_trgm",
        table_name="tickets",
        postgresql_using="gin",
        postgresql_ops={"summary": "gin_trgm_ops"},
    )
    op.drop_index("ix_tickets_status_id", table_name="tickets")
    op.drop_index("ix_tickets_search_vector", table_name="tickets", postgresql_using="gin")
    op.drop_index("ix_tickets_reporter_id_status_id", table_name="tickets")
    op.drop_index("ix_tickets_reporter_id_id", table_name="tickets")
    op.drop_index("ix_tickets_form_id_form_version", table_name="tickets")
    op.drop_index("ix_tickets_assignee_id_id", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_form_versions_created_by"), table_name="form_versions")
    op.drop_table("form_versions")
    op.drop_index(op.f("ix_verifications_user_id"), table_name="verifications")
    op.drop_table("verifications")
    op.drop_index(op.f("ix_uploads_uploader_id"), table_name="uploads")
    op.drop_index(op.f("ix_uploads_created_at"), table_name="uploads")
    op.drop_table("uploads")
    op.drop_index(op.f("ix_ticket_logs_user_id"), table_name="ticket_logs")
    op.drop_index("ix_ticket_logs_ticket_id_id", table_name="ticket_logs")
    op.drop_table("ticket_logs")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_impersonated_by"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_forms_disabled"), table_name="forms")
    op.drop_index(op.f("ix_forms_creator_id"), table_name="forms")
    op.drop_table("forms")
    op.drop_index("uq_accounts_provider_account", table_name="accounts")
    op.drop_index(op.f("ix_accounts_user_id"), table_name="accounts")
    op.drop_table("accounts")
    op.drop_index(op.f("ix_users_role"), table_name="users")
    op.drop_index(op.f("ix_users_pii_key_id"), table_name="users")
    op.drop_index(op.f("ix_users_name_index"), table_name="users")
    op.drop_table("users")
    op.drop_index(op.f("ix_size_samples_sampled_at"), table_name="size_samples")
    op.drop_table("size_samples")
    op.drop_index(op.f("ix_rate_limit_counters_expires_at"), table_name="rate_limit_counters")
    op.drop_table("rate_limit_counters")
    op.drop_table("alert_states")
    op.execute("DROP FUNCTION IF EXISTS tk_comments_search_vector_trigger()")
    op.execute("DROP FUNCTION IF EXISTS tk_tickets_search_vector_trigger()")
    op.execute("DROP FUNCTION IF EXISTS tk_ticket_search_vector(integer, text, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS tk_ticket_text_vector(text, jsonb)")
