"""The IMAP poller against a real IMAP server (pymap, in-memory, started by the suite on a
loopback port): messages are APPENDed with imaplib and polled by the real poller."""

from __future__ import annotations

import asyncio
import imaplib
import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tekudasai import tasks
from tekudasai.config import ConfigError, Settings
from tekudasai.db.session import Database
from tekudasai.inbound import imap
from tekudasai.inbound.service import Inbound
from tekudasai.jobs.worker import JobContext
from tests.conftest import make_settings
from tests.factories import Person
from tests.inbound.conftest import build, value

USER, PASSWORD = "demouser", "demopass"
_boxes = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def imap_port() -> Iterator[int]:
    port = _free_port()
    pymap = Path(sys.executable).with_name("pymap")
    server = subprocess.Popen(
        [str(pymap), "--host", "127.0.0.1", "--port", str(port), "--no-tls", "dict", "--demo-data"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("pymap did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


class Mailbox:
    """A fresh mailbox (and its done folder) on the test server, through plain imaplib."""

    def __init__(self, port: int) -> None:
        self.port = port
        n = next(_boxes)
        self.name, self.done = f"Support{n}", f"Done{n}"
        with self._session() as conn:
            conn.create(self.name)
            conn.create(self.done)

    def _session(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(USER, PASSWORD)
        return conn

    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{self.name}"

    def target(self, *, done: bool = True) -> imap.ImapTarget:
        return imap.parse_imap_url(self.url(), self.done if done else None)

    def append(self, *messages: bytes) -> None:
        with self._session() as conn:
            for message in messages:
                status, _ = conn.append(self.name, None, None, message)
                assert status == "OK"

    def count(self, folder: str, criterion: str = "ALL") -> int:
        with self._session() as conn:
            conn.select(folder)
            _, found = conn.search(None, criterion)
            return len(found[0].split())


@pytest.fixture
def mailbox(imap_port: int) -> Mailbox:
    return Mailbox(imap_port)


def test_imap_urls() -> None:
    target = imap.parse_imap_url("imaps://me%40x.example:p%3Ass@mail.example/Support%20Desk")
    assert (target.host, target.port, target.tls) == ("mail.example", 993, True)
    assert (target.user, target.password, target.mailbox) == (
        "me@x.example",
        "p:ss",
        "Support Desk",
    )
    assert imap.parse_imap_url("imap://u:p@h").port == 143
    assert imap.parse_imap_url("imap://u:p@h").mailbox == "INBOX"
    for bad in ("http://u:p@h/INBOX", "imaps://host-only", "imap://u:p@h:notaport/"):
        with pytest.raises(ConfigError):
            imap.parse_imap_url(bad)


def test_the_poller_is_a_periodic_job_only_when_configured(
    settings: Settings, tmp_path: Path
) -> None:
    assert imap.TASK in tasks.TASKS
    periodic = next(p for p in tasks.PERIODIC if p.name == imap.TASK)
    assert periodic.every(settings) is None
    on = make_settings(
        settings.database_url, tmp_path, TK_IMAP_URL="imap://u:p@h/", TK_IMAP_POLL="30"
    )
    assert periodic.every(on) == 30


async def test_poll_files_flags_and_moves_and_keeps_going(
    inbound: Inbound, database: Database, mailbox: Mailbox, reporter: Person
) -> None:
    mailbox.append(
        build(sender=reporter.email, subject="Printer"),
        b"\x00\x01 junk that is no message",  # unparseable: logged, flagged, moved on
        build(sender="bot@example.net", headers={"Auto-Submitted": "auto-replied"}),
        build(sender="b@example.net", subject="x" * 10_000),
        b"From: =?utf-8?q?N=00UL?= <n@example.net>\r\nSubject: \xff\xfe\x00\r\n\r\nbody",
    )
    handled = await imap.Poller(inbound, mailbox.target()).run()
    assert handled == 4  # all but the one that is not a message
    assert await value(database, "SELECT count(*) FROM tickets") == 3
    assert mailbox.count(mailbox.name) == 0
    assert mailbox.count(mailbox.done) == 5
    assert mailbox.count(mailbox.done, "UNSEEN") == 0
    # Nothing is left to do: a second run handles nothing.
    assert await imap.Poller(inbound, mailbox.target()).run() == 0


async def test_without_a_done_folder_messages_stay_flagged_seen(
    inbound: Inbound, database: Database, mailbox: Mailbox
) -> None:
    mailbox.append(build(sender="c@example.net"), build(sender="d@example.net"))
    assert await imap.Poller(inbound, mailbox.target(done=False)).run() == 2
    assert mailbox.count(mailbox.name) == 2 and mailbox.count(mailbox.name, "UNSEEN") == 0
    assert await value(database, "SELECT count(*) FROM tickets") == 2


async def test_idle_takes_new_mail_as_it_arrives(
    inbound: Inbound, database: Database, mailbox: Mailbox, settings: Settings
) -> None:
    """The periodic job, as the worker runs it: drains, then waits in IDLE for new mail."""
    polling = make_settings(
        settings.database_url,
        settings.data_dir,
        TK_IMAP_URL=mailbox.url(),
        TK_IMAP_POLL="6",
        TK_IMAP_DONE_FOLDER=mailbox.done,
    )
    mailbox.append(build(sender="early@example.net"))
    job = asyncio.create_task(imap.poll_task(JobContext(database, polling, job_id=1, attempt=1)))
    for _ in range(100):
        if await value(database, "SELECT count(*) FROM tickets") == 1:
            break
        await asyncio.sleep(0.1)
    assert not job.done()  # idling
    await asyncio.to_thread(mailbox.append, build(sender="late@example.net"))
    for _ in range(40):
        if await value(database, "SELECT count(*) FROM tickets") == 2:
            break
        await asyncio.sleep(0.1)
    assert await value(database, "SELECT count(*) FROM tickets") == 2
    assert not job.done()  # taken while idling, not by the next period's run
    await asyncio.wait_for(job, 15)
    assert mailbox.count(mailbox.done) == 2


async def test_two_pollers_at_once_file_each_message_once(
    inbound: Inbound, database: Database, mailbox: Mailbox
) -> None:
    mailbox.append(*(build(sender=f"p{i}@example.net") for i in range(6)))
    target = mailbox.target(done=False)
    results = await asyncio.gather(
        imap.Poller(inbound, target).run(), imap.Poller(inbound, target).run()
    )
    assert sum(results) >= 6
    assert await value(database, "SELECT count(*) FROM tickets") == 6


async def test_database_down_leaves_the_message_unseen(
    inbound: Inbound, settings: Settings, database: Database, mailbox: Mailbox
) -> None:
    mailbox.append(build(sender="q@example.net"))
    down_settings = make_settings(
        "postgresql://postgres@127.0.0.1:9/nowhere", settings.data_dir, TK_DB_CONNECT_TIMEOUT="2"
    )
    down = Database.connect("postgresql://postgres@127.0.0.1:9/nowhere", down_settings, pool_size=1)
    try:
        broken = Inbound(
            database=down, settings=settings, cipher=inbound.cipher, storage=inbound.storage
        )
        with pytest.raises(imap.TEMPORARY):
            await imap.Poller(broken, mailbox.target()).run()
    finally:
        await down.dispose()
    assert mailbox.count(mailbox.name, "UNSEEN") == 1
    # Once the database is back, the next run takes it.
    assert await imap.Poller(inbound, mailbox.target()).run() == 1
    assert await value(database, "SELECT count(*) FROM tickets") == 1


async def test_a_refused_login_is_an_error(inbound: Inbound, mailbox: Mailbox) -> None:
    target = imap.parse_imap_url(mailbox.url().replace(PASSWORD, "wrong"))
    with pytest.raises(imap.ImapError):
        await imap.Poller(inbound, target).run()


async def test_an_unreachable_server_is_an_error(inbound: Inbound) -> None:
    target = imap.parse_imap_url(f"imap://u:p@127.0.0.1:{_free_port()}/INBOX")
    with pytest.raises(OSError):
        await imap.Poller(inbound, target).run()
