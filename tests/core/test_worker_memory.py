"""A worker gives the memory of password hashing back once sign-ins pause."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tekudasai.server import prepare_worker_malloc

# Four hashes at once, then a pause; RssAnon (MB) before, right after the burst, after the pause.
BURST = """
import asyncio, re, pathlib
from tekudasai.accounts import passwords

def anon_mb():
    status = pathlib.Path("/proc/self/status").read_text()
    return int(re.search(r"RssAnon:\\s+(\\d+)", status).group(1)) / 1024

async def main():
    stored = await passwords.hash_password("correct horse battery")
    before = anon_mb()
    checks = [passwords.verify_password(stored, "correct horse battery") for _ in range(4)]
    assert all(await asyncio.gather(*checks))
    after_burst = anon_mb()
    await asyncio.sleep(passwords.RELEASE_AFTER_IDLE_S + 1.5)
    print(before, after_burst, anon_mb())

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_hashing_memory_is_returned_when_sign_ins_pause(tmp_path: Path) -> None:
    env = {**os.environ, "MALLOC_ARENA_MAX": "1"}  # what serve gives its workers
    out = subprocess.run(
        [sys.executable, "-c", BURST], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    before, after_burst, after_pause = map(float, out)
    # Each hash takes 19 MiB: kept, that would be 19 MiB per hashing thread (38 on two cores).
    assert after_pause - before < 8, (before, after_burst, after_pause)


def test_serve_gives_workers_one_malloc_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    prepare_worker_malloc()
    assert os.environ["MALLOC_ARENA_MAX"] == "1"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the operator's choice stands
    prepare_worker_malloc()
    assert os.environ["MALLOC_ARENA_MAX"] == "4"


def test_the_command_script_leaves_the_cli_out_of_workers() -> None:
    # What a spawned worker does with the `tekudasai` script: import what it imports.
    probe = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(command,) = entry_points(group='console_scripts', name='tekudasai')\n"
        "__import__(command.module)\n"
        "print(command.value, 'typer' in sys.modules, 'tekudasai.cli' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["tekudasai.__main__:run", "False", "False"]
