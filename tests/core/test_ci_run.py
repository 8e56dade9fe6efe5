"""`.ci/run` fails the run when any step fails: the tests (pytest collecting nothing, exit 5,
included), ruff check, ruff format --check or mypy. Run on a copy with stand-in steps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _stand_in(path: Path, exit_code: int, log: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/usr/bin/env bash\necho "{path.name} $*" >> "{log}"\nexit {exit_code}\n')
    path.chmod(0o755)


def _run(tmp_path: Path, *, tests: int, ruff: int = 0, mypy: int = 0) -> tuple[int, list[str]]:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    log = tmp_path / "steps.log"
    log.touch()
    _stand_in(tmp_path / "scripts" / "test.sh", tests, log)
    _stand_in(tmp_path / ".venv" / "bin" / "python", 0, log)
    _stand_in(tmp_path / ".venv" / "bin" / "ruff", ruff, log)
    _stand_in(tmp_path / ".venv" / "bin" / "mypy", mypy, log)
    done = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, log.read_text().splitlines()


@pytest.mark.parametrize(
    ("tests", "ruff", "mypy", "fails"),
    [
        (0, 0, 0, False),
        (5, 0, 0, True),  # pytest collected no tests
        (1, 0, 0, True),
        (0, 1, 0, True),
        (0, 0, 1, True),
    ],
)
def test_ci_run_fails_when_any_step_fails(
    tmp_path: Path, tests: int, ruff: int, mypy: int, fails: bool
) -> None:
    code, steps = _run(tmp_path, tests=tests, ruff=ruff, mypy=mypy)
    assert (code != 0) == fails, steps
    # Every step runs even after one failed (one run shows every problem).
    assert steps == [
        "test.sh ",
        "ruff check src tests",
        "ruff format --check src tests",
        "mypy ",
    ]
