"""How `serve` configures its workers: proxies, timeouts, pool budget, CPUs, origins, logs."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest

from tekudasai.config import ConfigError, Settings
from tekudasai.core.logging import JsonFormatter, TextFormatter, pick_format
from tekudasai.core.runtime import HeaderTimeoutProtocol, available_cpus, cgroup_cpu_quota
from tekudasai.server import CONNECTION_HEADROOM, pool_budget, uvicorn_config
from tests.conftest import make_settings


def settings_with(tmp_path: Path, **values: object) -> Settings:
    return make_settings(None, tmp_path, **values)


def test_forwarded_allow_ips_default_alias_and_star(tmp_path: Path) -> None:
    config = uvicorn_config(settings_with(tmp_path), host="127.0.0.1", port=8000, workers=1)
    assert config.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert config.http is HeaderTimeoutProtocol
    assert config.limit_concurrency and config.timeout_keep_alive == 5
    assert config.tk_header_timeout <= 30  # type: ignore[attr-defined]
    proxies = settings_with(tmp_path, FORWARDED_ALLOW_IPS="10.0.0.5, 10.0.1.0/24")
    assert proxies.forwarded_ips == ["10.0.0.5", "10.0.1.0/24"]
    assert settings_with(tmp_path, TK_FORWARDED_ALLOW_IPS="*").forwarded_ips == "*"


def test_header_timeout_is_at_most_30_seconds(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        settings_with(tmp_path, TK_HEADER_TIMEOUT="60")


def test_trusted_origins_add_the_listening_origins(tmp_path: Path) -> None:
    served = settings_with(
        tmp_path, TK_LISTEN_ORIGINS="http://127.0.0.1:8822,http://localhost:8822"
    )
    assert served.trusted_origins == [
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8822",
        "http://localhost:8822",
    ]
    explicit = settings_with(
        tmp_path, TRUSTED_ORIGINS="https://desk.example", TK_LISTEN_ORIGINS="http://x:1"
    )
    assert explicit.trusted_origins == ["https://desk.example"]


def test_default_pool_is_sized_down_to_fit_max_connections(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    assert pool_budget(settings, workers=4, max_connections=300) == (20, 5)
    size, overflow = pool_budget(settings, workers=16, max_connections=300)
    assert 16 * (size + overflow) + CONNECTION_HEADROOM <= 300
    assert size >= 2


def test_explicit_pool_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, TK_DB_POOL_SIZE="20")
    with pytest.raises(ConfigError, match="max_connections 300: use --workers 11"):
        pool_budget(settings, workers=16, max_connections=300)
    with pytest.raises(ConfigError):
        pool_budget(settings_with(tmp_path), workers=64, max_connections=100)


def test_cpu_count_honours_the_cgroup_quota(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert cgroup_cpu_quota(str(quota)) == 2
    quota.write_text("max 100000\n")
    assert cgroup_cpu_quota(str(quota)) is None
    assert cgroup_cpu_quota(str(tmp_path / "missing")) is None
    assert 1 <= available_cpus() <= len(__import__("os").sched_getaffinity(0))


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started %s", ("x",), None)
    record.__dict__.update(extra)
    return record


def test_json_logs_drop_uvicorn_color_message() -> None:
    line = JsonFormatter().format(_record(color_message="\x1b[32mStarted\x1b[0m", port=8000))
    entry = json.loads(line)
    assert entry["message"] == "Started x" and entry["port"] == 8000
    assert "color_message" not in entry


def test_text_logs_are_one_readable_line() -> None:
    line = TextFormatter().format(_record(color_message="\x1b[32m", request_id="abc"))
    assert line.endswith("INFO    uvicorn.error  Started x  request_id=abc")
    assert "\x1b" not in line and not line.startswith("{")


def test_auto_format_follows_the_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert pick_format("auto", Tty()) == "text"
    assert pick_format("auto", io.StringIO()) == "json"
    assert pick_format("json", Tty()) == "json"
    assert pick_format("text", io.StringIO()) == "text"
    assert sys.stderr is not None
