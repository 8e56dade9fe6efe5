"""A bounded schemathesis run against a live `serve`: no 5xx, and every answer (success or
error) matches the OpenAPI document, for a customer's and an admin's session."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.conftest import TEST_SECRET
from tests.factories import make_person
from tests.tickets.conftest import make_form

ST = shutil.which("st", path=str(Path(sys.executable).parent))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ST is None, reason="schemathesis is a dev dependency"),
]
# Per operation: about 45 operations in the document, so ~45 cases a session, ~90 in all.
# A longer fuzz run: TK_FUZZ_EXAMPLES=50 bash scripts/test.sh tests/test_schemathesis.py
EXAMPLES_PER_OPERATION = int(os.environ.get("TK_FUZZ_EXAMPLES", "1"))
# Sign-out would end the very session the run uses.
EXCLUDED = r"/auth/(signout|signout-all)$"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TK_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=db_url,
        TK_DATA_DIR=str(tmp_path / "data"),
        BETTER_AUTH_SECRET=TEST_SECRET,
        TK_ENV="test",
        TK_RATE_LIMITS="off",
        TK_BACKGROUND_JOBS="false",
        TK_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _wait_ready(base: str, deadline_s: float = 60) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() - started < deadline_s:
            try:
                if (await http.get("/api/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"serve not ready within {deadline_s}s")


def _run(base: str, token: str, report: Path) -> subprocess.CompletedProcess[str]:
    assert ST is not None
    return subprocess.run(
        [
            ST,
            "run",
            f"{base}/api/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--phases",
            "examples,fuzzing",
            "--seed",
            "20261206",
            "--workers",
            "1",
            "--no-shrink",
            "--generation-database",
            "none",
            "--exclude-path-regex",
            EXCLUDED,
            "--header",
            f"Authorization: Bearer {token}",
            "--request-timeout",
            "10",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240 * EXAMPLES_PER_OPERATION,
        cwd=report,
    )


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    live: str, database: Database, cipher: PiiCipher, tmp_path: Path
) -> None:
    customer = await make_person(database, cipher)
    admin = await make_person(database, cipher, role="admin")
    await make_form(database, form_id="it-support")
    await _wait_ready(live)
    for who in (customer, admin):
        result = await asyncio.to_thread(_run, live, who.token, tmp_path)
        assert result.returncode == 0, (who.user.role, result.stdout[-6000:], result.stderr[-2000:])
        counted = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
        assert counted is not None, result.stdout[-2000:]
        print(f"schemathesis, {who.user.role} session: {counted[0]}")  # shown with -s
        assert int(counted[2]) == int(counted[1]) >= 40  # one per operation at least
