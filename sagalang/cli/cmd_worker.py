"""``submit SPEC`` (enqueue a run), ``worker`` (drive queued and orphaned runs), ``migrate`` (journal schema)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from .cmd_ops import json_option, store_option
from .common import EXIT_FAILED, EXIT_INVALID, make_registry, plugin_option, user_errors
from .tracing import open_tracing, trace_option

__all__ = ["Duration", "migrate", "submit", "worker"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# click >= 8.2 makes ParamType generic; older versions cannot be subscripted at run time.
if TYPE_CHECKING:
    _ParamBase = click.ParamType[float]
else:
    _ParamBase = click.ParamType


class Duration(_ParamBase):
    """``250ms``, ``30s``, ``5m``, ``2h`` or plain seconds, as a float of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Parse ``value``."""
        if isinstance(value, int | float):
            return float(value)
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
        if m is None:
            self.fail(f"{value!r} is not a duration (use e.g. 500ms, 30s, 5m, 2h)", param, ctx)
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--input", "input_file", metavar="FILE|-", help="The saga's input: a JSON file, or - for stdin.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set one input field, converted to the field's declared type (undeclared: JSON, else text).",
)
@click.option(
    "--id", "run_id", metavar="ID", help="The run's id (default: SAGA-random); submitting it again is a no-op."
)
@click.option("--saga", "saga_name", metavar="NAME", help="Which saga of the file to run (default: the first).")
@store_option
@plugin_option
@json_option
@user_errors(EXIT_FAILED)
def submit(
    spec_path: str,
    input_file: str | None,
    sets: tuple[str, ...],
    run_id: str | None,
    saga_name: str | None,
    store_url: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Enqueue a run of SPEC for the workers and print its id at once.

    The spec is validated and the input checked here; the run is stored as
    `queued` together with the text of every spec file it needs, and the
    workers are woken (NOTIFY). Follow it with `sagalang show ID`.

    \b
    Exit status: 0 queued (or already submitted with this --id),
    3 invalid spec or input, 1 the store cannot be reached.
    \b
    Examples:
      sagalang submit order.saga --input order.json --store postgresql://db/sagas
      sagalang submit order.saga --set order_id=A1 --set qty=2 --id order-A1
      echo '{"order_id": "A2"}' | sagalang submit order.saga --input -
    """
    from ..errors import SagaError
    from ..inputs import load_input
    from ..journal import open_store, run_with_store
    from ..spec import load
    from ..worker import queued_record

    registry = make_registry(plugins)
    try:
        loaded = load(spec_path, registry=registry, saga=saga_name)
        data = loaded.prepare_input(load_input(loaded, input_file, sets))
    except SagaError as err:
        click.echo(f"sagalang: error: {err}", err=True)
        sys.exit(EXIT_INVALID)
    record = queued_record(loaded, data, run_id)

    stored, created = run_with_store(open_store(store_url), lambda store: store.create_run(record))
    if as_json:
        click.echo(json.dumps({"run_id": stored.run_id, "created": created, "status": stored.status}))
        return
    click.echo(stored.run_id)
    if not created:
        click.echo(f"sagalang: run {stored.run_id} was submitted before (status {stored.status})", err=True)


@click.command()
@store_option
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=4, show_default=True, help="Runs at once.")
@click.option(
    "--lease",
    type=Duration(),
    default="30s",
    show_default=True,
    help="Lease length: a dead worker's runs are taken over this long after its last heartbeat.",
)
@click.option("--poll", type=Duration(), default="5s", show_default=True, help="Fallback poll when no NOTIFY comes.")
@click.option(
    "--grace",
    type=Duration(),
    default="30s",
    show_default=True,
    help="On SIGTERM: how long runs in flight may take to finish before they are handed back.",
)
@click.option("--worker-id", metavar="ID", help="Owner id in the runs table (default: host:pid:random).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Log verbosity (to stderr).",
)
@plugin_option
@trace_option
@user_errors(EXIT_FAILED)
def worker(
    store_url: str | None,
    concurrency: int,
    lease: float,
    poll: float,
    grace: float,
    worker_id: str | None,
    log_level: str,
    plugins: tuple[str, ...],
    trace: bool | None,
) -> None:
    """Drive queued and orphaned runs of a PostgreSQL store until SIGTERM.

    Run any number of workers on any number of hosts against one database.
    Each claims runs with leases (FOR UPDATE SKIP LOCKED), renews them by
    heartbeat, takes over the runs of a worker whose lease expired, and is
    fenced off (its writes refused) if another worker took one of its runs.
    SIGTERM or Ctrl-C: stop claiming, let runs in flight finish for --grace,
    then hand the rest back to the other workers; a second signal hands back at once.

    \b
    Examples:
      sagalang worker --store postgresql://db/sagas --concurrency 8 --plugin myapp.handlers
      SAGALANG_STORE=postgresql://db/sagas sagalang worker --lease 10s
      OTEL_TRACES_EXPORTER=otlp OTEL_SERVICE_NAME=orders sagalang worker --plugin myapp.handlers
    """
    from ..errors import SagaError
    from ..journal import default_store_url
    from ..journal.postgres import PostgresStore
    from ..worker import Worker, WorkerOptions, make_worker_id

    url = store_url or default_store_url()
    if not url.startswith(("postgresql:", "postgres:")):
        raise SagaError(
            f"sagalang worker needs a postgresql:// store, not {url!r}: "
            "with SQLite, run sagas with `sagalang run` and continue them with `sagalang resume`"
        )
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    registry = make_registry(plugins)
    options = WorkerOptions(
        concurrency=concurrency, lease=lease, poll=poll, grace=grace, worker_id=worker_id or make_worker_id()
    )
    # The pid in the connection name lets operators (and tests) find one worker's sessions.
    app_name = f"sagalang-worker-{os.getpid()}@{socket.gethostname()}"[:50]
    store = PostgresStore(url, max_size=concurrency + 3, application_name=app_name, retry_for=3600.0)
    tracing = open_tracing(trace)
    traced: dict[str, Any] = {}
    if tracing is not None:
        traced = {"listeners": (tracing.listener,), "step_middleware": (tracing.listener.step_middleware,)}

    async def main() -> None:
        w = Worker(store, registry, options, **traced)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            w.stop(now=signals > 1)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            await w.run()
        finally:
            await store.close()

    try:
        asyncio.run(main())
    finally:
        if tracing is not None:
            tracing.close()
    # Idle pool threads exit at once after the worker's executor shutdown; busy ones do not.
    deadline = time.monotonic() + 1.0
    for t in threading.enumerate():
        if t.name.startswith("sagalang-handler"):
            t.join(timeout=max(0.0, deadline - time.monotonic()))
    lingering = [t for t in threading.enumerate() if t.name.startswith("sagalang-handler") and t.is_alive()]
    if lingering:
        # Handler calls of runs that were handed back: their results no longer matter, and
        # waiting for them would make the grace period unbounded.
        logging.getLogger("sagalang.worker").info("exiting with %d handler call(s) still running", len(lingering))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@click.command()
@store_option
@user_errors(EXIT_FAILED)
def migrate(store_url: str | None) -> None:
    """Create or upgrade the journal's schema in a store (workers also do it on first use).

    Migrations run in one transaction under a lock, so running this while
    workers start is safe. A store written by a newer sagalang is refused.

    \b
    Examples:
      sagalang migrate --store postgresql://db/sagas
      sagalang migrate --store sqlite:///.sagalang/sagalang.db
    """
    from ..journal import default_store_url, open_store
    from ..journal.migrations import LATEST_VERSION
    from ..journal.postgres import PostgresStore, redact

    url = store_url or default_store_url()
    store = open_store(url)
    if not isinstance(store, PostgresStore):

        async def go() -> None:
            await store.open()  # the embedded stores migrate on open
            await store.close()

        asyncio.run(go())
        click.echo(f"{url}: journal at schema version {LATEST_VERSION}")
        return
    before, after = asyncio.run(store.migrate())
    if before == after:
        click.echo(f"{redact(url)}: already at schema version {after}")
    else:
        click.echo(f"{redact(url)}: migrated from schema version {before} to {after}")
