"""How values read on a page: times, durations, errors and JSON, kept short."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["compact", "duration", "error_text", "pretty", "shown_path", "timezone_name", "when"]


def when(t: float | None) -> str:
    """A Unix time in this machine's local time, to the second ('-' for none)."""
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def timezone_name() -> str:
    """The local time zone the pages show times in."""
    return time.strftime("%Z") or "local time"


def duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min`` ('' for none)."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def compact(value: Any, limit: int = 160) -> str:
    """``value`` as one line of JSON, cut to ``limit`` characters."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(error: Any) -> str:
    """A journaled error (``{"type", "message"}``) as ``Type: message``."""
    if error is None:
        return ""
    if isinstance(error, Mapping):
        name = error.get("type") or error.get("name") or "error"
        message = error.get("message")
        return f"{name}: {message}" if message else str(name)
    return str(error)


def pretty(value: Any) -> str:
    """``value`` as indented JSON ('' for none)."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def shown_path(path: str) -> str:
    """``path`` relative to the server's working directory when it lies inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if rel.startswith("..") else rel
