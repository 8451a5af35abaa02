"""Generate the pictures of docs/diagrams.md: every example saga, and one failed run.

Run it from anywhere (``make docs-diagrams`` does)::

    python scripts/gen_diagrams.py            # writes docs/img/*.svg and the gallery in docs/diagrams.md
    python scripts/gen_diagrams.py --check    # exit 1 if any picture or the gallery is stale

Every file under docs/img/ is written here from the specs in specs/examples/;
nothing there is drawn by hand. The failed run is a real run of
``order.saga`` on the in-memory store with the example handlers: the carrier
does not deliver to the destination, so the pivot fails and every step before
it is compensated. Needs Graphviz's ``dot``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"
IMG = ROOT / "docs" / "img"
PAGE = ROOT / "docs" / "diagrams.md"
BEGIN = "<!-- BEGIN GENERATED GALLERY: scripts/gen_diagrams.py rewrites everything up to END -->"
END = "<!-- END GENERATED GALLERY -->"
FAILED_RUN_ID = "order-failed-run"


def example_sagas() -> list[tuple[Path, str, str | None]]:
    """(file, saga name, description) of every saga in specs/examples, in a stable order."""
    from sagalang.parser import parse

    out: list[tuple[Path, str, str | None]] = []
    for path in sorted(EXAMPLES.rglob("*.saga")):
        for saga in parse(path.read_text(encoding="utf-8"), str(path)).sagas:
            out.append((path, saga.name, saga.description))
    return out


def failed_run() -> tuple[Any, Any]:
    """A real run of order.saga that fails at its pivot and is compensated: (spec, folded run state)."""
    from sagalang.interpreter import run
    from sagalang.journal import open_store
    from sagalang.plugins import Registry
    from sagalang.spec import load
    from sagalang.state import fold

    registry = Registry.discover(cwd=ROOT)
    spec = load(EXAMPLES / "order.saga", registry)
    data = json.loads((EXAMPLES / "order.input.json").read_text(encoding="utf-8"))
    data["country"] = "AQ"  # the example carrier does not deliver there: `ship` fails for good
    data["express"] = False  # `upgrade` is skipped, and the undo order is the same in every run

    async def go() -> Any:
        store = open_store("memory:")
        await store.open()
        result = await run(spec, data, store=store, registry=registry, run_id=FAILED_RUN_ID)
        return fold(await store.events(result.run_id))

    # The example handlers keep their effects in a database; a fresh one makes every run the same.
    saved = os.environ.get("SAGALANG_EXAMPLES_DB")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SAGALANG_EXAMPLES_DB"] = str(Path(tmp) / "examples.db")
        try:
            state = asyncio.run(go())
        finally:
            if saved is None:
                del os.environ["SAGALANG_EXAMPLES_DB"]
            else:
                os.environ["SAGALANG_EXAMPLES_DB"] = saved
    if state.status != "compensated" or state.failed_step != "ship":
        raise SystemExit(f"the example run did not fail at `ship` as documented: {state.status}, {state.failed_step}")
    return spec, state


def build() -> dict[Path, bytes]:
    """Every generated file and its content."""
    from sagalang.render import load_spec, render

    files: dict[Path, bytes] = {}
    rows: list[str] = []
    for path, name, description in example_sagas():
        _, diags, sagas = load_spec(path)
        errors = [d.format_line() for d in diags if d.severity == "error"]
        if errors:
            raise SystemExit(f"{path}: cannot draw an invalid spec:\n" + "\n".join(errors))
        rel = path.relative_to(EXAMPLES).with_suffix("")
        stem = "-".join(rel.parts) + (f"-{name}" if name != rel.name else "")
        svg = render(sagas, format="svg", saga=name)
        assert isinstance(svg, bytes)
        files[IMG / f"{stem}.svg"] = svg
        shown = path.relative_to(ROOT).as_posix()
        rows += [f"### `{name}` ({shown})", ""]
        if description:
            rows += [description, ""]
        rows += [f"`sagalang render {shown} --saga {name} -o {stem}.svg`", ""]
        rows += [f"![{name}](img/{stem}.svg)", ""]
    # Large sagas: the same travel example collapsed and left to right.
    _, _, travel = load_spec(EXAMPLES / "travel.saga")
    first = next(iter(travel))
    compact = render(travel, format="svg", saga=first, rankdir="LR", collapse=True)
    assert isinstance(compact, bytes)
    files[IMG / "travel-collapsed-lr.svg"] = compact
    rows += [
        "### Collapsed, left to right",
        "",
        f"`sagalang render specs/examples/travel.saga --lr --collapse -o travel-collapsed-lr.svg` "
        f"draws `{first}` with its parallel block and fan-out as single nodes:",
        "",
        "![travel, collapsed](img/travel-collapsed-lr.svg)",
        "",
    ]
    spec, state = failed_run()
    svg = render(spec, state, format="svg")
    mermaid = render(spec, state, format="mermaid")
    assert isinstance(svg, bytes) and isinstance(mermaid, str)
    files[IMG / "order-failed-run.svg"] = svg
    path_text = " → ".join(state.compensation_path)
    error = (state.error or {}).get("message", "")
    rows += [
        "## A failed run",
        "",
        f"Run `{state.run_id}` of `order_fulfillment` ended **{state.status}**: step `{state.failed_step}` "
        f"failed ({error}), so the completed steps were undone in this order: {path_text}. "
        "The bold dashed arrows are that path, numbered; the pale dashed arrows are compensation edges "
        "the run did not need.",
        "",
        f"`sagalang render specs/examples/order.saga --run {state.run_id} -o order-failed-run.svg`",
        "",
        "![order_fulfillment, failed run](img/order-failed-run.svg)",
        "",
        "The same run as Mermaid (`--format mermaid`), as GitHub and most Markdown viewers show it:",
        "",
        "```mermaid",
        mermaid.rstrip("\n"),
        "```",
        "",
    ]
    gallery = "\n".join([BEGIN, "", *rows, END])
    page = PAGE.read_text(encoding="utf-8")
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{PAGE} has no generated-gallery markers ({BEGIN!r} ... {END!r})")
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    files[PAGE] = (head + gallery + tail).encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check compare) docs/img/*.svg and the gallery of docs/diagrams.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is missing or stale")
    args = parser.parse_args(argv)
    from sagalang.errors import SagaError

    try:
        files = build()
    except SagaError as err:
        print(f"gen_diagrams: error: {err}", file=sys.stderr)
        return 1
    stale = [p for p, data in files.items() if not p.exists() or p.read_bytes() != data]
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    IMG.mkdir(parents=True, exist_ok=True)
    wanted = set(files)
    for old in IMG.glob("*.svg"):
        if old not in wanted:
            old.unlink()  # a removed example: its picture goes too (docs/img holds only generated files)
    for p in stale:
        p.write_bytes(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
