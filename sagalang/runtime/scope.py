"""Scopes: the entry saga, or a sub-saga behind a ``call`` step, with the data its expressions read.

A scope's ``env`` is what expressions see: ``input``, ``saga`` and the output
of every step that has finished. A sub-saga's steps are journaled in the
caller's run as ``call_step/step``; its scope is made once per run and kept,
so its compensation sees the same input as its forward run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import ir
from ..context import Failure
from ..errors import SagaError
from ..expr import ExprError, evaluate
from ..graph import SagaGraph
from ..redact import secret_values
from .outcome import expr_failure, jsonable

if TYPE_CHECKING:
    from .run import Run

__all__ = ["Scope", "root_scope", "saga_output", "sub_scope"]


class Scope:
    """One saga being driven, and the data its expressions read."""

    __slots__ = ("env", "graph", "input", "prefix", "saga")

    def __init__(self, run: Run, saga: ir.Saga, graph: SagaGraph, prefix: str, input: dict[str, Any]) -> None:
        self.saga = saga
        self.graph = graph
        self.prefix = prefix  # qualifies this scope's step names in the journal
        self.input = input
        self.env: dict[str, Any] = {
            "input": input,
            "saga": {"id": run.run_id, "name": saga.name, "attempt": run.state.saga_attempt},
        }
        steps = run.state.steps
        for name in graph.order:
            st = steps.get(prefix + name)
            # A step being (or already) compensated after a resume keeps the output it succeeded
            # with: undo arguments and sub-saga inputs may still refer to it.
            if st is not None and (st.status == "succeeded" or st.output is not None):
                self.env[name] = st.output
            elif st is not None and st.status == "skipped":
                self.env[name] = None

    def qualified(self, name: str) -> str:
        """The journal's name of this scope's step ``name``."""
        return self.prefix + name if self.prefix else name


def root_scope(run: Run) -> Scope:
    """A new scope for the entry saga (at the start of each whole-saga attempt)."""
    run.scopes = {}
    return Scope(run, run.spec.saga, run.spec.graph, "", run.input)


def sub_scope(run: Run, sc: Scope, step: ir.Step, q: str) -> Scope:
    """The scope of the ``call`` step ``q`` (its input from the call's arguments); a Failure if they are bad."""
    found: Scope | None = run.scopes.get(q)
    if found is not None:
        return found
    assert step.call is not None
    callee = run.spec.sagas[step.call.saga]
    try:
        args = {a.name: evaluate(a.value, sc.env) for a in step.call.args}
    except ExprError as err:
        raise expr_failure(err, f"step {q!r}: argument") from None
    try:
        sub_input = run.spec.prepare_input(args, callee.name)
    except SagaError as err:
        raise Failure("sagalang.InputError", str(err), retryable=False) from None
    run.journal.secrets |= secret_values(sub_input, run.spec.secrets(callee.name))
    sub = Scope(run, callee, run.spec.graphs[callee.name], q + "/", sub_input)
    run.scopes[q] = sub
    return sub


def saga_output(sc: Scope) -> Any:
    """The saga's ``output { }`` mapping, or every step's output when it has none."""
    if sc.saga.output is None:
        return {n: sc.env.get(n) for n in sc.graph.order if n in sc.env}
    try:
        return jsonable({e.name: evaluate(e.value, sc.env) for e in sc.saga.output})
    except ExprError as err:
        raise expr_failure(err, f"saga {sc.saga.name!r}: output") from None
