"""Worker process settings: the garbage collector is tuned once the app is built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET


def test_importing_the_worker_app_freezes_start_up_objects(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TK_DATA_DIR": str(tmp_path),
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "DATABASE_URL": "postgresql://nobody@/never-connected?host=/nonexistent",
    }
    probe = (
        "import gc, tekudasai.asgi as worker;"
        "print(gc.get_freeze_count(), gc.get_threshold()[0], type(worker.app).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    frozen, young_threshold, app_type = int(out[0]), int(out[1]), out[2]
    assert frozen > 10_000  # routes, models, mappers: everything built at start-up
    assert young_threshold == 20_000
    assert app_type == "FastAPI"
