"""Seed data: an idempotent demo set, and bulk data for benchmarks loaded with COPY."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.models import Role, User
from tekudasai.accounts.passwords import hash_password
from tekudasai.core.crypto import PiiCipher, normalise_email
from tekudasai.core.ids import new_id
from tekudasai.db.session import Database
from tekudasai.forms.models import Form, FormVersion
from tekudasai.tickets.models import Ticket, TicketComment, TicketLog, TicketStatus

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoAccount:
    email: str
    name: str
    role: Role
    password: str


DEMO_ACCOUNTS = (
    DemoAccount("admin@tekudasai.local", "Ada Admin", Role.ADMIN, "demo-admin-1"),
    DemoAccount("agent@tekudasai.local", "Aiko Agent", Role.AGENT, "demo-agent-1"),
    DemoAccount("alice@example.com", "Alice Customer", Role.USER, "demo-user-1"),
    DemoAccount("bob@example.com", "Bob Customer", Role.USER, "demo-user-1"),
)


def _options(*labels: str) -> list[dict[str, str]]:
    return [
        {"id": f"opt-{i}", "label": label, "value": label.lower().replace(" ", "-")}
        for i, label in enumerate(labels, start=1)
    ]


DEMO_FORMS: list[dict[str, Any]] = [
    {
        "id": "demo-it-support",
        "name": "IT support",
        "description": "Something is broken or does not work as expected.",
        "elements": [
            {
                "id": "e1",
                "type": "text-panel",
                "name": "intro",
                "content": "Tell us **what happened**. We answer within one working day.",
            },
            {
                "id": "e2",
                "type": "dropdown",
                "name": "category",
                "label": "Category",
                "required": True,
                "options": _options("Laptop", "Email", "Network", "Other"),
            },
            {
                "id": "e3",
                "type": "text-field",
                "name": "otherCategory",
                "label": "Which other category?",
                "required": True,
                "placeholder": "e.g. printer",
                "format": "text",
                "maxLength": 80,
                "showIf": {"field": "category", "op": "eq", "value": "other"},
            },
            {
                "id": "e4",
                "type": "textarea",
                "name": "description",
                "label": "What happened?",
                "required": True,
                "placeholder": "Steps, error messages …",
                "minLength": 10,
                "maxLength": 5000,
            },
            {
                "id": "e5",
                "type": "text-field",
                "name": "contactEmail",
                "label": "Contact e-mail",
                "required": False,
                "placeholder": "you@example.com",
                "format": "email",
            },
            {
                "id": "e6",
                "type": "file-upload",
                "name": "screenshot",
                "label": "Screenshot",
                "required": False,
            },
        ],
    },
    {
        "id": "demo-access-request",
        "name": "Access request",
        "description": "Ask for access to a system or a shared folder.",
        "elements": [
            {
                "id": "e1",
                "type": "radio",
                "name": "system",
                "label": "System",
                "required": True,
                "options": _options("CRM", "Wiki", "File share"),
            },
            {
                "id": "e2",
                "type": "multi-select",
                "name": "permissions",
                "label": "Permissions",
                "required": True,
                "options": _options("Read", "Write", "Admin"),
            },
            {
                "id": "e3",
                "type": "text-field",
                "name": "justification",
                "label": "Why is admin needed?",
                "required": True,
                "format": "text",
                "minLength": 5,
                "showIf": {"field": "permissions", "op": "in", "value": ["admin"]},
            },
            {
                "id": "e4",
                "type": "date",
                "name": "neededBy",
                "label": "Needed by",
                "required": False,
            },
            {
                "id": "e5",
                "type": "text-field",
                "name": "employeeId",
                "label": "Employee id",
                "required": True,
                "format": "text",
                "pattern": "[A-Z]{2}[0-9]{4}",
                "placeholder": "AB1234",
            },
            {
                "id": "e6",
                "type": "checkbox",
                "name": "policyAccepted",
                "label": "I have read the access policy",
                "required": True,
            },
        ],
    },
    {
        "id": "demo-purchase",
        "name": "Purchase request",
        "description": "Hardware, software or services to buy.",
        "elements": [
            {
                "id": "e1",
                "type": "text-field",
                "name": "item",
                "label": "Item",
                "required": True,
                "format": "text",
                "maxLength": 120,
            },
            {
                "id": "e2",
                "type": "number",
                "name": "quantity",
                "label": "Quantity",
                "required": True,
                "min": 1,
                "max": 500,
            },
            {
                "id": "e3",
                "type": "number",
                "name": "unitPrice",
                "label": "Unit price (EUR)",
                "required": False,
                "min": 0,
            },
            {
                "id": "e4",
                "type": "textarea",
                "name": "approvalNote",
                "label": "Approval note",
                "required": True,
                "showIf": {"field": "unitPrice", "op": "filled"},
            },
            {
                "id": "e5",
                "type": "dropdown",
                "name": "urgency",
                "label": "Urgency",
                "required": False,
                "options": _options("Low", "Normal", "High"),
            },
            {
                "id": "e6",
                "type": "text-panel",
                "name": "note",
                "content": "Purchases above 1,000 EUR need a manager's approval.",
            },
        ],
    },
]

DEMO_TICKETS: list[dict[str, Any]] = [
    {
        "form": "demo-it-support",
        "reporter": "alice@example.com",
        "summary": "Laptop does not boot",
        "status": "open",
        "response": {
            "category": "laptop",
            "description": "Black screen after the update this morning.",
        },
    },
    {
        "form": "demo-it-support",
        "reporter": "bob@example.com",
        "summary": "Cannot send e-mail",
        "status": "in_progress",
        "assign": True,
        "response": {"category": "email", "description": "Outgoing mails stay in the outbox."},
        "comments": [
            ("agent", "Looking into it: which mail client do you use?", False),
            ("reporter", "The desktop client, version 12.", False),
        ],
    },
    {
        "form": "demo-access-request",
        "reporter": "alice@example.com",
        "summary": "Wiki write access",
        "status": "pending",
        "assign": True,
        "response": {
            "system": "wiki",
            "permissions": ["read", "write"],
            "employeeId": "AL1234",
            "policyAccepted": True,
        },
        "comments": [
            ("agent", "Waiting for your manager's approval.", False),
            ("agent", "Manager is on leave until Monday.", True),
        ],
    },
    {
        "form": "demo-purchase",
        "reporter": "bob@example.com",
        "summary": "Two external monitors",
        "status": "resolved",
        "assign": True,
        "response": {
            "item": "27-inch monitor",
            "quantity": 2,
            "unitPrice": 249.5,
            "approvalNote": "Approved by team lead.",
            "urgency": "normal",
        },
        "comments": [("agent", "Ordered; delivery expected Thursday.", False)],
    },
    {
        "form": "demo-it-support",
        "reporter": "bob@example.com",
        "summary": "VPN drops every hour",
        "status": "closed",
        "assign": True,
        "response": {
            "category": "network",
            "description": "The VPN disconnects every hour on the hour.",
        },
        "comments": [
            ("agent", "Fixed by the new VPN profile.", False),
            ("reporter", "Works now, thank you!", False),
        ],
    },
]


async def seed_demo(db: AsyncSession, cipher: PiiCipher) -> list[DemoAccount]:
    """Create whichever demo accounts, forms and tickets are missing (idempotent)."""
    users: dict[str, User] = {}
    for account in DEMO_ACCOUNTS:
        user = await accounts_service.find_by_email(db, cipher, account.email)
        if user is None:
            user = await accounts_service.create_user(
                db,
                cipher,
                email=account.email,
                name=account.name,
                password=account.password,
                role=account.role,
                email_verified=True,
            )
        users[account.email] = user
    admin = users[DEMO_ACCOUNTS[0].email]
    agent = users[DEMO_ACCOUNTS[1].email]

    new_forms = set()
    for definition in DEMO_FORMS:
        if await db.get(Form, definition["id"]) is None:
            db.add(
                Form(
                    id=definition["id"],
                    creator_id=admin.id,
                    name=definition["name"],
                    description=definition["description"],
                    elements=definition["elements"],
                )
            )
            await db.flush()
            db.add(
                FormVersion(
                    form_id=definition["id"],
                    version=1,
                    name=definition["name"],
                    description=definition["description"],
                    elements=definition["elements"],
                    created_by=admin.id,
                )
            )
            new_forms.add(definition["id"])
    await db.flush()

    for spec in DEMO_TICKETS:
        if spec["form"] not in new_forms:
            continue
        reporter = users[spec["reporter"]]
        ticket = Ticket(
            reporter_id=reporter.id,
            summary=spec["summary"],
            status="open",
            form_id=spec["form"],
            form_version=1,
            form_response=_with_blanks(spec["form"], spec["response"]),
        )
        db.add(ticket)
        await db.flush()
        db.add(
            TicketLog(
                ticket_id=ticket.id,
                user_id=reporter.id,
                action_type="create",
                action="Ticket created",
            )
        )
        if spec.get("assign"):
            ticket.assignee_id = agent.id
            db.add(
                TicketLog(
                    ticket_id=ticket.id,
                    user_id=agent.id,
                    action_type="assign",
                    action="Ticket assigned to Aiko Agent",
                )
            )
        for who, body, internal in spec.get("comments", []):
            author = agent if who == "agent" else reporter
            db.add(
                TicketComment(
                    ticket_id=ticket.id, author_id=author.id, body=body, internal=internal
                )
            )
            db.add(
                TicketLog(
                    ticket_id=ticket.id,
                    user_id=author.id,
                    action_type="comment",
                    action="Internal note added" if internal else "Comment added",
                    internal=internal,
                )
            )
        if spec["status"] != "open":
            ticket.status = spec["status"]
            db.add(
                TicketLog(
                    ticket_id=ticket.id,
                    user_id=agent.id,
                    action_type="update",
                    action=f"Ticket status updated from open to {spec['status']}",
                    details={"status": {"from": "open", "to": spec["status"]}},
                )
            )
        await db.flush()
    return list(DEMO_ACCOUNTS)


# -- bulk -------------------------------------------------------------------------------------


def _with_blanks(form_id: str, answers: dict[str, Any]) -> dict[str, Any]:
    """A demo ticket's answers as the API stores them: a key for every input, "" when blank."""
    (definition,) = (d for d in DEMO_FORMS if d["id"] == form_id)
    names = [e["name"] for e in definition["elements"] if e["type"] != "text-panel"]
    return {name: answers.get(name, "") for name in names}


BULK_FORM_ID = "bulk-general"
BULK_PASSWORD = "bulk-password-1"  # noqa: S105 - printed benchmark credential
WORDS = tuple(
    "printer laptop email network vpn password account access monitor keyboard mouse license"
    " software update crash slow error screen battery wifi phone calendar meeting folder share"
    " backup restore invoice order delivery badge door office chair desk headset camera".split()
)
STATUSES = [s.value for s in TicketStatus]
BATCH = 50_000


@dataclass
class BulkResult:
    users: int
    tickets: int
    forms: int
    seconds: float


async def seed_bulk(
    database: Database,
    cipher: PiiCipher,
    *,
    users: int,
    tickets: int,
    forms: int,
    progress: Progress | None = None,
    seed: int = 42,
) -> BulkResult:
    """Load users, forms and tickets with COPY. Users share one password hash (hashing is the
    slow part, and these accounts exist for load tests): BULK_PASSWORD."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not security
    started = time.perf_counter()
    report = progress or (lambda _stage, _done, _total: None)
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection
        async with pg.transaction():
            admin_id = await pg.fetchval(
                "SELECT id FROM users WHERE role = 'admin' ORDER BY created_at LIMIT 1"
            )
            user_ids = await _bulk_users(pg, cipher, users, rng, report)
            form_ids = await _bulk_forms(pg, forms, admin_id)
            if tickets:
                if not user_ids:
                    user_ids = [
                        r["id"]
                        for r in await pg.fetch(
                            "SELECT id FROM users WHERE role = 'user' LIMIT 10000"
                        )
                    ]
                if not user_ids:
                    raise ValueError("no customers to file tickets: add --users N")
                if not form_ids:
                    form_ids = [BULK_FORM_ID]
                    await _bulk_forms(pg, 1, admin_id, only_default=True)
                agents = [
                    r["id"]
                    for r in await pg.fetch("SELECT id FROM users WHERE role IN ('agent', 'admin')")
                ]
                await _bulk_tickets(pg, tickets, user_ids, agents, form_ids, rng, report)
        await conn.close()
    async with database.engine.connect() as conn:
        await conn.execute(text("ANALYZE users"))
        await conn.execute(text("ANALYZE tickets"))
        await conn.execute(text("ANALYZE ticket_logs"))
        await conn.commit()
    return BulkResult(
        users=users,
        tickets=tickets,
        forms=len(form_ids) if forms else 0,
        seconds=time.perf_counter() - started,
    )


async def _bulk_users(
    pg: Any, cipher: PiiCipher, count: int, rng: random.Random, report: Progress
) -> list[str]:
    if count <= 0:
        return []
    password_hash = await hash_password(BULK_PASSWORD)
    now = datetime.now(UTC)
    offset = await pg.fetchval("SELECT count(*) FROM users")
    ids: list[str] = []
    done = 0
    while done < count:
        size = min(BATCH // 5, count - done)
        user_rows, account_rows = [], []
        for i in range(done, done + size):
            user_id = new_id()
            email = f"user{offset + i}@bulk.example"
            name = f"Bulk User {offset + i}"
            role = "agent" if i % 100 == 0 else "user"
            user_rows.append(
                (
                    user_id,
                    cipher.encrypt(name, context="user.name"),
                    cipher.encrypt(normalise_email(email), context="user.email"),
                    cipher.email_index(email),
                    cipher.name_index(name),
                    cipher.current_key_id,
                    True,
                    role,
                    False,
                    now,
                    now,
                )
            )
            account_rows.append((new_id(), user_id, "credential", user_id, password_hash, now, now))
            if role == "user":
                ids.append(user_id)
        await pg.copy_records_to_table(
            "users",
            records=user_rows,
            columns=[
                "id",
                "name_ciphertext",
                "email_ciphertext",
                "email_index",
                "name_index",
                "pii_key_id",
                "email_verified",
                "role",
                "banned",
                "created_at",
                "updated_at",
            ],
        )
        await pg.copy_records_to_table(
            "accounts",
            records=account_rows,
            columns=[
                "id",
                "user_id",
                "provider_id",
                "account_id",
                "password",
                "created_at",
                "updated_at",
            ],
        )
        done += size
        report("users", done, count)
    return ids


async def _bulk_forms(
    pg: Any, count: int, admin_id: str | None, *, only_default: bool = False
) -> list[str]:
    if count <= 0:
        return []
    elements = [
        {
            "id": "e1",
            "type": "dropdown",
            "name": "category",
            "label": "Category",
            "required": True,
            "options": _options("Hardware", "Software", "Access", "Other"),
        },
        {
            "id": "e2",
            "type": "textarea",
            "name": "description",
            "label": "Description",
            "required": True,
        },
    ]
    ids = [BULK_FORM_ID] + [f"bulk-form-{i}" for i in range(1, count)]
    if only_default:
        ids = ids[:1]
    for form_id in ids:
        exists = await pg.fetchval("SELECT 1 FROM forms WHERE id = $1", form_id)
        if exists:
            continue
        await pg.execute(
            "INSERT INTO forms (id, creator_id, name, description, elements)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            form_id,
            admin_id,
            f"General request {form_id}",
            "Bulk seed form",
            json.dumps(elements),
        )
        await pg.execute(
            "INSERT INTO form_versions (form_id, version, name, description, elements, created_by)"
            " SELECT id, 1, name, description, elements, creator_id FROM forms WHERE id = $1",
            form_id,
        )
    return ids


TICKET_COLUMNS = [
    "id",
    "reporter_id",
    "assignee_id",
    "summary",
    "status",
    "form_id",
    "form_version",
    "form_response",
    "form_open",
    "created_at",
    "updated_at",
]
# Secondary indexes are cheaper to build once, sorted, than to maintain row by row.
REBUILT_INDEX_TABLES = ("tickets", "ticket_logs")


async def _bulk_tickets(
    pg: Any,
    count: int,
    reporters: list[str],
    agents: list[str],
    form_ids: list[str],
    rng: random.Random,
    report: Progress,
) -> None:
    """COPY into a staging table, then one set-based INSERT per batch that computes the search
    vector (the per-row trigger is off meanwhile); big loads rebuild the GIN indexes at the end."""
    start_id = await pg.fetchval("SELECT coalesce(max(id), 0) FROM tickets")
    await pg.execute("SET LOCAL synchronous_commit = off")
    await pg.execute("SET LOCAL maintenance_work_mem = '512MB'")
    rebuild = count >= max(start_id, 100_000)
    index_sql = []
    if rebuild:
        rows = await pg.fetch(
            "SELECT i.indexrelid::regclass::text AS indexname,"
            " pg_get_indexdef(i.indexrelid) AS indexdef"
            " FROM pg_index i WHERE i.indrelid = ANY($1::regclass[])"
            " AND NOT i.indisprimary AND NOT i.indisunique",
            list(REBUILT_INDEX_TABLES),
        )
        for row in rows:
            index_sql.append(row["indexdef"])
            await pg.execute(f'DROP INDEX "{row["indexname"]}"')
    # Every reference in the generated rows points at rows read above, so as superuser we skip
    # the per-row foreign-key triggers (5 checks a ticket dominate the load time otherwise).
    if await pg.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        await pg.execute("SET LOCAL session_replication_role = replica")
    # The per-status counts are rebuilt once at the end instead of per batch.
    await pg.execute("SET LOCAL tekudasai.skip_ticket_counts = on")
    # The reports rollup too: one recount at the end instead of deltas for every batch.
    await pg.execute("SET LOCAL tekudasai.skip_report_rollup = on")
    await pg.execute("ALTER TABLE tickets DISABLE TRIGGER tickets_search_vector")
    await pg.execute(
        "CREATE TEMP TABLE seed_tickets (LIKE tickets INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    columns = ", ".join(TICKET_COLUMNS)
    insert = (
        f"INSERT INTO tickets ({columns}, search_vector)"
        f" SELECT {columns}, tk_ticket_text_vector(summary, form_response) FROM seed_tickets"
    )
    base_time = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / max(count, 1)
    categories = ["hardware", "software", "access", "other"]

    def make_batch(first: int, size: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        ticket_rows, log_rows = [], []
        for i in range(first, first + size):
            ticket_id = start_id + i + 1
            summary = " ".join(rng.choices(WORDS, k=rng.randint(3, 7))).capitalize()
            reporter = reporters[rng.randrange(len(reporters))]
            assignee = agents[rng.randrange(len(agents))] if agents and rng.random() < 0.6 else None
            created = base_time + step * i
            response = json.dumps(
                {
                    "category": rng.choice(categories),
                    "description": " ".join(rng.choices(WORDS, k=12)),
                }
            )
            ticket_rows.append(
                (
                    ticket_id,
                    reporter,
                    assignee,
                    summary,
                    rng.choice(STATUSES),
                    form_ids[i % len(form_ids)],
                    1,
                    response,
                    False,
                    created,
                    created,
                )
            )
            log_rows.append((ticket_id, reporter, "create", "Ticket created", created))
        return ticket_rows, log_rows

    async def load(ticket_rows: list[tuple[Any, ...]], log_rows: list[tuple[Any, ...]]) -> None:
        await pg.copy_records_to_table("seed_tickets", records=ticket_rows, columns=TICKET_COLUMNS)
        await pg.execute(insert)
        await pg.execute("TRUNCATE seed_tickets")
        await pg.copy_records_to_table(
            "ticket_logs",
            records=log_rows,
            columns=["ticket_id", "user_id", "action_type", "action", "created_at"],
        )

    # Generate the next batch in a thread while PostgreSQL loads the current one.
    done = 0
    batch = await asyncio.to_thread(make_batch, 0, min(BATCH, count))
    while batch[0]:
        size = len(batch[0])
        following = min(BATCH, count - done - size)
        batch, _ = await asyncio.gather(
            asyncio.to_thread(make_batch, done + size, following), load(*batch)
        )
        done += size
        report("tickets", done, count)
    await pg.execute("ALTER TABLE tickets ENABLE TRIGGER tickets_search_vector")
    await pg.execute("SET LOCAL session_replication_role = origin")
    await pg.execute("SET LOCAL tekudasai.skip_ticket_counts = off")
    await pg.execute("SELECT tk_ticket_counts_rebuild()")
    await pg.execute("SET LOCAL tekudasai.skip_report_rollup = off")
    await pg.execute("SELECT tk_report_rollup_rebuild()")
    for number, statement in enumerate(index_sql, start=1):
        await pg.execute(statement)
        report("indexes", number, len(index_sql))
    # Ids were given explicitly; move the identity past them.
    await pg.execute(
        "SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))"
    )
