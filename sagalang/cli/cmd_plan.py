"""``sagalang plan SPEC``: the forward order and what each step's failure would trigger."""

from __future__ import annotations

import sys

import click

from .common import make_registry, plugin_option, use_color, user_errors


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--saga", "saga_name", default=None, metavar="NAME", help="Only this saga of SPEC (default: all).")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Spec root that imports may not escape.")
@plugin_option
@user_errors()
def plan(spec: str, as_json: bool, saga_name: str | None, root: str | None, plugins: tuple[str, ...]) -> None:
    """Show SPEC's forward order as parallel levels and, for every step, what its failure triggers.

    Before the point of no return a failure compensates the steps that completed,
    in reverse dependency order (grouped when `compensation { order parallel }`);
    after it, the failing step is retried and the saga is stuck if it fails for good.

    \b
    Exit status: 0 printed, 1 the spec has errors.
    \b
    Examples:
      sagalang plan specs/examples/order.saga
      sagalang plan travel.saga --json | jq '.sagas[0].failures'
    """
    from .. import diagnostics as D
    from ..export import dumps, load_spec_file
    from ..plan import format_plans, plan_module, plans_to_json

    registry = make_registry(plugins)
    project, diags, source = load_spec_file(spec, registry, root)
    errors = [d for d in diags if d.severity == "error"]
    if errors or source is None or source.module is None:
        click.echo(D.format_text(diags, project.text_of, use_color(sys.stderr)), nl=False, err=True)
        click.echo(D.summary(diags, len(project.files) or 1), err=True)
        sys.exit(1)
    callees = {name: saga for name, (saga, _) in project.scope(source.path).items()}
    plans = plan_module(source.module, callees, registry)
    if saga_name is not None:
        plans = [p for p in plans if p.saga == saga_name]
        if not plans:
            names = ", ".join(s.name for s in source.module.sagas)
            click.echo(f"sagalang: error: no saga {saga_name!r} in {source.display} (it has: {names})", err=True)
            sys.exit(1)
    if as_json:
        click.echo(dumps(plans_to_json(plans)), nl=False)
    else:
        click.echo(format_plans(plans), nl=False)
