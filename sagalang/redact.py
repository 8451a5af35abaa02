"""Redaction of secret values: by value, everywhere a value can travel.

A secret input value never reaches the journal, an event, an error message or
a run's output in clear: any string equal to a secret becomes ``"***"``, and a
secret of at least :data:`MIN_SUBSTRING` characters is also masked inside
longer strings (error messages that quote it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MIN_SUBSTRING", "REDACTED", "redact", "secret_values"]

REDACTED = "***"
# Shorter secrets are only masked when a whole string equals them: masking every
# occurrence of, say, "42" would garble unrelated text.
MIN_SUBSTRING = 6


def secret_values(data: Mapping[str, Any], fields: Iterable[str]) -> frozenset[str]:
    """The string values of ``fields`` in ``data`` (numbers are compared as text too)."""
    out: set[str] = set()
    for name in fields:
        value = data.get(name)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str | int | float):
            if str(value):
                out.add(str(value))
        elif isinstance(value, list | tuple):
            out.update(str(v) for v in value if isinstance(v, str | int | float) and not isinstance(v, bool))
    return frozenset(out)


def _text(value: str, secrets: frozenset[str]) -> str:
    if value in secrets:
        return REDACTED
    for s in secrets:
        if len(s) >= MIN_SUBSTRING and s in value:
            value = value.replace(s, REDACTED)
    return value


def redact(value: Any, secrets: frozenset[str]) -> Any:
    """``value`` with every secret masked; containers are copied only when something changed."""
    if not secrets:
        return value
    if isinstance(value, str):
        return _text(value, secrets)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return REDACTED if str(value) in secrets else value
    if isinstance(value, Mapping):
        changed = False
        out: dict[Any, Any] = {}
        for k, v in value.items():
            nv = redact(v, secrets)
            changed = changed or nv is not v
            out[k] = nv
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [redact(v, secrets) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            return items
        return value
    return value
