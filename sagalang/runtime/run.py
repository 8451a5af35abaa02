"""One run being driven: what every part of the runtime shares about it.

A :class:`Run` holds the spec, the resolved handlers, the journal (and through
it the run's state), the stop state and the run's options. The parts that act
on it each live in a module of their own: :mod:`.forward` (steps as their
dependencies complete), :mod:`.attempt` (one step's calls and retries),
:mod:`.fanout`, :mod:`.compensation`, and :mod:`.driver` (the whole run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ..context import Context
from ..events import Listener
from ..journal.base import Store
from ..plugins import Registry
from ..redact import secret_values
from ..spec import Spec
from ..state import RunState
from .calls import HandlerTable
from .cancellation import Stop
from .clock import Clock, SystemClock
from .journal import RunJournal

__all__ = ["Middleware", "Run", "RunResult", "StepMiddleware"]

Middleware = Callable[[Callable[[Context], Awaitable[Any]], Context], Awaitable[Any]]
StepMiddleware = Middleware

_SYSTEM_CLOCK = SystemClock()


@dataclass
class RunResult:
    """How a run ended: its status, output (redacted), error and final state."""

    run_id: str
    status: str
    output: Any
    error: dict[str, Any] | None
    state: RunState

    @property
    def ok(self) -> bool:
        """True when the saga completed."""
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The result as JSON (``sagalang run --json``)."""
        out: dict[str, Any] = {"run_id": self.run_id, "status": self.status, "output": self.output}
        if self.error is not None:
            out["error"] = self.error
        if self.state.failed_step is not None:
            out["failed_step"] = self.state.failed_step
        out["compensated"] = list(self.state.compensation_path)
        return out

    @classmethod
    def of(cls, state: RunState) -> RunResult:
        """The result a run's (final) state describes."""
        return cls(state.run_id, state.status, state.output, state.error, state)


class Run:
    """A run of ``spec`` being driven by this process."""

    __slots__ = (
        "clock",
        "executor",
        "fail_at",
        "input",
        "journal",
        "middleware",
        "poll_cancels",
        "registry",
        "run_id",
        "scopes",
        "spec",
        "state",
        "step_middleware",
        "stop",
        "store",
        "table",
    )

    def __init__(
        self,
        spec: Spec,
        store: Store,
        registry: Registry,
        run_id: str,
        input: dict[str, Any],
        *,
        listeners: Sequence[Listener] = (),
        middleware: Sequence[Middleware] = (),
        step_middleware: Sequence[StepMiddleware] = (),
        fail_at: Iterable[str] = (),
        clock: Clock | None = None,
        executor: Executor | None = None,
        state: RunState | None = None,
        epoch: int | None = None,
        poll_cancels: bool | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.registry = registry
        self.run_id = run_id
        self.input = input
        self.middleware = tuple(middleware)
        self.step_middleware = tuple(step_middleware)
        self.fail_at = frozenset(fail_at)
        self.clock: Clock = clock if clock is not None else _SYSTEM_CLOCK
        self.executor = executor
        self.table = HandlerTable.of(spec, registry)
        secret_fields = spec.secrets()
        secrets = secret_values(input, secret_fields) if secret_fields else frozenset()
        state = state if state is not None else RunState(run_id, saga=spec.entry)
        self.state = state  # the fold of the journal so far (the journal folds into it)
        self.journal = RunJournal(store, state, self.clock.time, listeners, secrets)
        self.journal.fence(epoch)
        on_failure = spec.saga.on_failure
        siblings_cancel = on_failure is not None and on_failure.siblings == "cancel"
        self.stop = Stop(self.pivot_done, siblings_cancel)
        # Look in the store for cancels from other processes, unless none can reach it or they are delivered.
        self.poll_cancels = store.shared if poll_cancels is None else poll_cancels
        self.scopes: dict[str, Any] = {}  # sub-saga scopes by the qualified name of their call step

    @property
    def key_base(self) -> str:
        """Idempotency keys start with this: the run id, plus ``#N`` from the N-th whole-saga attempt on.

        A whole-saga retry starts again after a clean rollback; reusing the first
        attempt's keys would let an idempotent handler answer with the effect it
        already undid, so each attempt of the saga gets keys of its own.
        """
        n = self.state.saga_attempt
        return self.run_id if n <= 1 else f"{self.run_id}#{n}"

    def key(self, q: str, item: int | None = None) -> str:
        """The idempotency key of step ``q`` (of fan-out item ``item``)."""
        return f"{self.key_base}/{q}" if item is None else f"{self.key_base}/{q}/{item}"

    def cancel(self, reason: str = "cancel") -> None:
        """Stop forward progress and interrupt running handlers (compensation follows)."""
        self.stop.cancel(reason)

    def pivot_done(self) -> bool:
        """True once a step whose completion ends backward recovery has succeeded."""
        pivot_like = self.table.pivot_like
        for q, st in self.state.steps.items():
            if st.status == "succeeded" and pivot_like.get(self.owner(q), False):
                return True
        return False

    def owner(self, q: str) -> tuple[str, str]:
        """``(saga, step)`` of the qualified step name ``q`` (``call_step/step`` inside a sub-saga)."""
        saga = self.spec.saga
        parts = q.split("/")
        for part in parts[:-1]:
            step = self.spec.graphs[saga.name].steps.get(part)
            if step is None or step.call is None:
                break
            saga = self.spec.sagas[step.call.saga]
        return saga.name, parts[-1]

    def result(self) -> RunResult:
        """The run's result from its state."""
        return RunResult.of(self.state)
