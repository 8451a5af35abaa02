"""Real crashes for tests: a store that SIGKILLs its process right after its k-th journal append.

``python -m sagalang.testing.crash K ARGS...`` runs ``sagalang ARGS...`` with
every store it opens wrapped in :class:`KillAfterAppends`, so the process dies
exactly where a crash would leave the journal: after the K-th append reached
the store, before anything that follows it happened. A later ``sagalang
resume`` then shows what a real restart recovers. With K = 0 nothing is
killed, and the number of appends is printed on stderr at the end
(``sagalang.testing.crash: N appends``): the crash points a run has.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ..events import Event
from ..journal.base import Store

__all__ = ["KillAfterAppends", "main"]


class KillAfterAppends:
    """``store``, killing this process (SIGKILL) right after the ``after``-th append returns."""

    def __init__(self, store: Store, after: int, counter: list[int] | None = None) -> None:
        self._store = store
        self.after = after
        self.appends = 0
        self._counter = counter  # shared by every store the command opens

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append(
        self, run_id: str, events: Sequence[Event], status: str | None = None, epoch: int | None = None
    ) -> list[Event]:
        """Append through the real store, then die if this was the fatal append."""
        out = await self._store.append(run_id, events, status, epoch)
        self.appends += 1
        if self._counter is not None:
            self._counter[0] += 1
        if self.appends == self.after:
            os.kill(os.getpid(), signal.SIGKILL)
        return out


def main(argv: Sequence[str] | None = None) -> None:
    """``K ARGS...``: the sagalang command ``ARGS``, killed after its K-th journal append."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].isdigit():
        sys.exit("usage: python -m sagalang.testing.crash K SAGALANG_ARGS...")
    after, rest = int(args[0]), args[1:]
    from .. import journal
    from ..cli import main as cli_main

    opener = journal.open_store
    appends = [0]

    def open_crashing(url: str | None = None) -> Store:
        return KillAfterAppends(opener(url), after, appends)

    journal.open_store = open_crashing
    try:
        cli_main(rest)
    finally:
        if after == 0:
            print(f"sagalang.testing.crash: {appends[0]} appends", file=sys.stderr)


if __name__ == "__main__":
    main()
