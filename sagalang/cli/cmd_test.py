"""``sagalang test SPEC...``: fault injection at every failure point, invariants checked."""

from __future__ import annotations

import json
import sys

import click

from .common import make_registry, plugin_option, use_color, user_errors


def _all_registered(path: str, registry: object) -> bool:
    """True when every handler the spec names is registered (then --real is the default)."""
    from ..errors import SagaError
    from ..plugins import Registry
    from ..spec import load

    assert isinstance(registry, Registry)
    try:
        spec = load(path, registry=Registry(), check=False)
    except SagaError:
        return False
    for saga in spec.sagas.values():
        for step in saga.steps():
            for inv in (step.do, step.undo, step.use):
                if inv is not None and registry.get(inv.handler) is None:
                    return False
    return True


@click.command("test")
@click.argument("specs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--real", "mode", flag_value="real", help="Run the registered handlers (wrapped to inject faults).")
@click.option("--fake", "mode", flag_value="fake", help="Run generated fake handlers that record effects and undos.")
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Input JSON (default: NAME.input.json beside the spec, else a generated one).",
)
@click.option(
    "--only",
    multiple=True,
    metavar="POINT",
    help="Explore only these failure points (e.g. fail:charge, cancel@7); repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option(
    "--all", "show_all", is_flag=True, help="List every failure point, not only the ones that broke an invariant."
)
@plugin_option
@user_errors(exit_code=3)
def test(
    specs: tuple[str, ...],
    mode: str | None,
    input_file: str | None,
    only: tuple[str, ...],
    as_json: bool,
    show_all: bool,
    plugins: tuple[str, ...],
) -> None:
    """Run each saga at every failure point and check that it rolls back cleanly.

    Failure points: every step failing for good, failing once then succeeding on
    retry, timing out (outcome uncertain); every undo failing once and for good;
    a cancel after every journal event; a crash after every journal append
    followed by a resume. Invariants: the terminal state the semantics prescribe;
    every effect kept by a completed saga or undone exactly once; nothing applied
    twice per idempotency key; undo in reverse dependency order; nothing at or
    after the pivot undone; no undo of a step that never started or was skipped;
    undo handlers only read data that exists.

    \b
    Exit status: 0 when every invariant holds, 1 when one breaks, 3 when a spec is invalid.
    \b
    Examples:
      sagalang test specs/examples/order.saga
      sagalang test flows/*.saga --fake --json
      sagalang test order.saga --only timeout:charge
    """
    from ..diagnostics import format_text
    from ..errors import SagaValidationError
    from ..testing import explore_file

    registry = make_registry(plugins)
    reports = []
    invalid = False
    for path in specs:
        real = mode == "real" or (mode is None and _all_registered(path, registry))
        kwargs = {"registry": registry if real else None, "input_file": input_file, "only": only}
        try:
            report = explore_file(path, **kwargs)  # type: ignore[arg-type]
        except SagaValidationError as err:
            # Show the static findings, then what the flawed saga does at run time.
            click.echo(format_text(err.diagnostics, _reader, use_color(sys.stderr)), err=True, nl=False)
            invalid = True
            report = explore_file(path, unchecked=True, **kwargs)  # type: ignore[arg-type]
        reports.append(report)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        color = use_color()
        for r in reports:
            click.echo(_render(r, show_all, color))
    sys.exit(0 if all(r.ok for r in reports) and not invalid else 1)


def _reader(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _render(report: object, show_all: bool, color: bool) -> str:
    from ..testing import Report

    assert isinstance(report, Report)
    lines = []
    bad = [o for o in report.outcomes if not o.ok]
    head = (
        f"{report.spec}: saga {report.saga}: {len(report.outcomes)} failure points explored "
        f"in {report.seconds:.2f}s ({'fake' if report.fake else 'real'} handlers; clean run: {report.baseline})"
    )
    lines.append(click.style(head, bold=True) if color else head)
    rows = [o for o in report.outcomes if show_all or not o.ok]
    if rows:
        width = max(len(o.point.id) for o in rows)
        for o in rows:
            mark = "ok  " if o.ok else "FAIL"
            if color:
                mark = click.style(mark, fg="green" if o.ok else "red", bold=True)
            undone = ", ".join(o.compensated) or "-"
            lines.append(f"  {mark} {o.point.id.ljust(width)}  {o.status:<11} undone: {undone}")
            for v in o.violations:
                lines.append(f"         {v}")
    kinds: dict[str, int] = {}
    for o in report.outcomes:
        kinds[o.point.kind] = kinds.get(o.point.kind, 0) + 1
    lines.append("  points: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    if bad:
        lines.append(f"  {len(bad)} failure point(s) broke an invariant; reproduce with:")
        for o in bad:
            lines.append(f"    {report.reproducer(o)}")
    else:
        lines.append("  every invariant held")
    return "\n".join(lines)
