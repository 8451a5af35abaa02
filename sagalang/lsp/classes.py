"""A step's class (compensatable, pivot, retriable, readonly) as the editor shows it.

The class is read from the saga's plan, which decides the point of no return
and what each step's undo is; :func:`step_class` is the one place the server
asks, and :data:`CLASSES` the one place each class is described, so a new
class is one entry there and one test in :func:`step_class`.
"""

from __future__ import annotations

from .. import ir
from .workspace import Analysis

__all__ = ["CLASSES", "step_class"]

CLASSES: dict[str, str] = {
    "compensatable": "its undo reverses it when a later step fails",
    "pivot": "the point of no return: once it completes the saga only goes forward",
    "retriable": "after the point of no return: retried until it succeeds, never undone",
    "readonly": "changes nothing, so nothing needs undoing",
    "irreversible": "has side effects but no undo (the validator says where that is allowed)",
}


def step_class(analysis: Analysis, saga: ir.Saga, name: str) -> str | None:
    """The class of step ``name`` of ``saga`` (a key of :data:`CLASSES`; None when its steps form a cycle)."""
    plan = analysis.plan(saga)
    if plan is None or not any(s.name == name for s in plan.steps):
        return None
    step = plan.step(name)
    if step.kind == "readonly":
        return "readonly"
    if plan.pivot == name:
        return "pivot"
    if "retriable" in step.marks:
        return "retriable"
    if step.undo is not None:
        return "compensatable"
    return "irreversible"
