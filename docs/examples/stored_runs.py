"""Look after a store's runs from a script: what `sagalang list`, `resume --all` and `cancel` do.

    python stored_runs.py [STORE_URL]            # report, then resume the runs whose process died
    python stored_runs.py [STORE_URL] RUN_ID     # cancel one run

Handlers come from the entry points and ``[tool.sagalang] plugins``, as for the CLI.
"""

from __future__ import annotations

import asyncio
import sys

import sagalang
from sagalang.journal import open_store
from sagalang.journal.base import TERMINAL_STATES, Store


async def report(store: Store) -> list[str]:
    """One line per unfinished run: who drives it, and whether its spec changed on disk."""
    lines = []
    for rec in await store.list_runs():
        if rec.status in TERMINAL_STATES:
            continue
        who = "orphaned" if sagalang.is_orphaned(rec) else ("driven" if sagalang.lease_is_live(rec) else "waiting")
        drift = sagalang.spec_drift(rec)
        lines.append(f"{rec.run_id}: {rec.status}, {who}" + (f" ({drift})" if drift else ""))
    return lines


async def resume_orphans(store: Store, registry: sagalang.Registry) -> dict[str, str]:
    """Resume every unfinished run nobody drives; what became of each run."""
    outcomes = await sagalang.resume_all(store, registry, on_note=lambda text: print("note:", text))
    found = {}
    for o in outcomes:
        if o.state is not None:
            found[o.run_id] = o.state.status
        elif o.skipped_by is not None:
            found[o.run_id] = f"driven by {o.skipped_by}"
        else:
            found[o.run_id] = f"cannot resume: {o.error}"
    return found


async def cancel(store: Store, run_id: str, registry: sagalang.Registry) -> str:
    """Cancel one run and wait for the outcome."""
    outcome = await sagalang.cancel_run(store, run_id, registry, timeout=60, on_note=print)
    if outcome.already_finished:
        return f"nothing to cancel: it had finished ({outcome.state.status if outcome.state else '?'})"
    return outcome.state.status if outcome.state is not None else "requested"


async def main(url: str | None, run_id: str | None) -> None:
    """Report and resume, or cancel ``run_id``."""
    registry = sagalang.Registry.discover()
    store = open_store(url)
    await store.open()
    try:
        if run_id is not None:
            print(await cancel(store, run_id, registry))
            return
        print("\n".join(await report(store)) or "no unfinished runs")
        print(await resume_orphans(store, registry))
    finally:
        await store.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0] if args else None, args[1] if len(args) > 1 else None))
