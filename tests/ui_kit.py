"""A store of real runs for the web view's tests: every status a page shows, hostile text, a secret.

The runs are driven by the interpreter with the handlers below (a plugin file
written next to the spec), except an orphaned run and one whose spec cannot be
rebuilt, which are written to the store as a crashed process would leave them.
"""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagalang.events import Event
from sagalang.interpreter import run as run_saga
from sagalang.journal import open_store
from sagalang.journal.base import RunRecord, Store
from sagalang.plugins import Registry
from sagalang.spec import load

SECRET = "4111-2222-SECRET-7777"
HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"
HOSTILE_ID = 'run-<script>alert("id")</script>"><img src=x onerror=alert(3)>/x'
HOSTILE_SAGA = '"><svg onload=alert(4)>'

SPEC = textwrap.dedent(
    """\
    saga shop version "1" {
        input {
            order: string
            card: string secret
            fail: string = ""
            note: string = ""
        }
        step reserve {
            do   kit.act(tag: "reserve", fail: input.fail, note: input.note)
            undo kit.undo(tag: "reserve", fail: input.fail)
        }
        step charge {
            do   kit.act(tag: "charge", fail: input.fail, note: input.note, card: input.card)
            undo kit.undo(tag: "charge", fail: input.fail)
        }
        pivot step ship {
            do kit.act(tag: "ship", fail: input.fail, note: input.note)
        }
        step notify {
            do kit.act(tag: "notify", fail: input.fail, note: input.note)
        }
    }
    """
)

HELD_SPEC = textwrap.dedent(
    """\
    saga held version "1" {
        step prepare {
            do   kit.act(tag: "prepare")
            undo kit.undo(tag: "prepare")
        }
        step wait {
            do   kit.hold()
            undo kit.undo(tag: "wait")
        }
    }
    """
)

HANDLERS = textwrap.dedent(
    '''\
    """Handlers of the web view's test sagas."""

    import asyncio

    from sagalang.context import Failure
    from sagalang.plugins import handler


    @handler("kit.act")
    async def act(tag: str, fail: str = "", note: str = "", card: str = "") -> dict:
        """Succeed with a note, or fail for good when ``fail`` names this step."""
        if fail == tag:
            raise Failure("kit.Broken", f"{tag} broke: {note}", retryable=False)
        return {"tag": tag, "note": note, "card_tail": card[-4:]}


    @handler("kit.undo")
    async def undo(tag: str, fail: str = "") -> None:
        """Undo; fails for good when ``fail`` is ``undo-TAG``."""
        if fail == "undo-" + tag:
            raise Failure("kit.UndoBroken", f"undo of {tag} broke", retryable=False)


    @handler("kit.hold")
    async def hold() -> dict:
        """Wait until cancelled (a run that stays live until someone cancels it)."""
        await asyncio.Event().wait()
        return {}
    '''
)


@dataclass
class Kit:
    """Where the kit's files are and which runs its store holds."""

    folder: Path
    url: str
    runs: dict[str, str]  # what the run shows -> its id

    @property
    def spec(self) -> Path:
        return self.folder / "shop.saga"

    @property
    def held_spec(self) -> Path:
        return self.folder / "held.saga"

    @property
    def plugin(self) -> Path:
        return self.folder / "kit_handlers.py"

    def registry(self) -> Registry:
        reg = Registry()
        reg.load_plugin(str(self.plugin))
        return reg


def write_files(folder: Path) -> None:
    """The specs and the handlers' plugin file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shop.saga").write_text(SPEC)
    (folder / "held.saga").write_text(HELD_SPEC)
    (folder / "kit_handlers.py").write_text(HANDLERS)


# What each run shows -> (run id, input beyond order and card, steps made to fail).
DRIVEN: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "completed": ("shop-completed", {}, ()),
    "compensated": ("shop-compensated", {"fail": "charge", "note": "card declined"}, ()),
    "stuck": ("shop-stuck", {"fail": "notify"}, ()),
    # charge fails, then the undo of reserve fails for good
    "aborted": ("shop-aborted", {"fail": "undo-reserve"}, ("charge",)),
    "hostile": (HOSTILE_ID, {"fail": "ship", "note": HOSTILE}, ()),
}


async def _drive(kit: Kit, store: Store) -> None:
    registry = kit.registry()
    spec = load(kit.spec, registry=registry)
    for name, (run_id, extra, fail_at) in DRIVEN.items():
        if name not in kit.runs:
            continue
        data = {"order": "A-1", "card": SECRET, **extra}
        await run_saga(spec, data, store=store, registry=registry, run_id=run_id, fail_at=fail_at)


async def _orphan(kit: Kit, store: Store) -> None:
    """A run whose process died after charge started: running, no lease."""
    spec = load(kit.spec)
    run_id = "shop-orphaned"
    await store.create_run(
        RunRecord(
            run_id=run_id,
            saga="shop",
            entry="shop.saga",
            spec=spec.sources,
            spec_hash=spec.spec_hash,
            input={"order": "A-9", "card": SECRET, "fail": "", "note": ""},
            handlers=spec.handler_names,
            spec_path=str(kit.spec),
        )
    )
    masked = {"order": "A-9", "card": "***", "fail": "", "note": ""}
    await store.append(
        run_id,
        [
            Event(
                "saga.started",
                run_id,
                data={"saga": "shop", "input": masked, "attempt": 1, "steps": list(spec.graph.order)},
            ),
            Event("step.started", run_id, step="reserve", attempt=1, data={"idempotency_key": f"{run_id}/reserve"}),
            Event("step.succeeded", run_id, step="reserve", attempt=1, data={"output": {"tag": "reserve"}}),
            Event("step.started", run_id, step="charge", attempt=1, data={"idempotency_key": f"{run_id}/charge"}),
        ],
    )


async def _unbuildable(store: Store) -> None:
    """A run whose recorded spec does not parse, under a hostile saga name."""
    run_id = "broken-spec"
    await store.create_run(
        RunRecord(
            run_id=run_id,
            saga=HOSTILE_SAGA,
            entry="x.saga",
            spec={"x.saga": "saga { this is not a spec"},
            spec_hash="0" * 64,
            input={},
        )
    )
    await store.append(run_id, [Event("saga.started", run_id, data={"saga": HOSTILE_SAGA, "input": {"x": HOSTILE}})])


def make_kit(folder: Path, hostile: bool = True, url: str | None = None) -> Kit:
    """Write the files and a store (SQLite in ``folder`` unless ``url``) holding one run of each kind.

    ``hostile``: and the runs with hostile text.
    """
    write_files(folder)
    url = url or f"sqlite:///{folder / 'journal.db'}"
    kit = Kit(folder, url, {name: rid for name, (rid, _, _) in DRIVEN.items() if hostile or name != "hostile"})
    kit.runs["orphaned"] = "shop-orphaned"
    if hostile:
        kit.runs["broken"] = "broken-spec"

    async def go() -> None:
        store = open_store(url)
        await store.open()
        try:
            await _drive(kit, store)
            await _orphan(kit, store)
            if hostile:
                await _unbuildable(store)
        finally:
            await store.close()

    asyncio.run(go())
    return kit
