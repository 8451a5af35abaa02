"""How a captured output is compared with its golden file, and how a difference is explained.

JSON is compared as data (the order of an object's keys does not matter), text
exactly. A journal is compared in three passes so that the message says what
kind of change it is: each step's own events first, then the global order
(a change there alone is a different interleaving of concurrent steps), then
the fake-clock times.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from typing import Any

SAGA_LEVEL = "(saga)"  # the group of events that belong to no step


def unified(expected: str, actual: str, name: str) -> str:
    """A unified diff of two texts, golden first."""
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True), f"golden/{name}", f"now/{name}"
    )
    return "".join(lines)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def diff_output(expected: str, actual: str, name: str) -> str | None:
    """None when ``actual`` matches the golden text; else a diff (JSON files compare as data)."""
    if expected == actual:
        return None
    if name.endswith(".json"):
        old, new = _json(expected), _json(actual)
        if old is not None and old == new:
            return None
    return unified(expected, actual, name)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _what(event: dict[str, Any]) -> dict[str, Any]:
    """An event without its position and time: what happened, not when."""
    return {k: v for k, v in event.items() if k not in ("seq", "t")}


def _by_step(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for ev in events:
        groups[ev["step"] or SAGA_LEVEL].append(json.dumps(_what(ev), sort_keys=True))
    return groups


def _order_line(ev: dict[str, Any]) -> str:
    item = f"[{ev['item']}]" if ev["item"] is not None else ""
    return f"{ev['kind']} {ev['step'] or SAGA_LEVEL}{item} attempt={ev['attempt']}\n"


def diff_journal(expected: str, actual: str, name: str) -> str | None:
    """None when the run is the same; else what differs: the outcome, a step's events, the interleaving, or times."""
    if expected == actual:
        return None
    old, new = _lines(expected), _lines(actual)
    parts: list[str] = []
    old_run, new_run = (old[0] if old else {}), (new[0] if new else {})
    if old_run != new_run:
        parts.append("the run's outcome differs:\n" + unified(_pretty(old_run), _pretty(new_run), name))
    old_ev, new_ev = old[1:], new[1:]
    old_steps, new_steps = _by_step(old_ev), _by_step(new_ev)
    changed = sorted(s for s in old_steps.keys() | new_steps.keys() if old_steps.get(s) != new_steps.get(s))
    for step in changed:
        a = "".join(line + "\n" for line in old_steps.get(step, []))
        b = "".join(line + "\n" for line in new_steps.get(step, []))
        parts.append(f"the events of {step} differ:\n" + unified(a, b, f"{name} ({step})"))
    if not changed and [_what(e) for e in old_ev] != [_what(e) for e in new_ev]:
        a = "".join(map(_order_line, old_ev))
        b = "".join(map(_order_line, new_ev))
        parts.append(
            "ONLY THE INTERLEAVING OF CONCURRENT STEPS DIFFERS: every step's own events are identical, "
            "their global order is not (decide whether the new order is intended):\n" + unified(a, b, name)
        )
    elif not changed and not parts:
        parts.append("only the fake-clock times or sequence numbers differ:\n" + unified(expected, actual, name))
    return "\n".join(parts) if parts else None


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
