"""sagalang: a declarative language for sagas and the engine that runs them.

The library is usable without the CLI::

    import asyncio, sagalang
    spec = sagalang.load("order.saga", registry)
    result = asyncio.run(sagalang.run(spec, {"sku": "A1"}, registry=registry))

Names are imported on first use, so ``import sagalang`` (and the CLI's
``validate``) does not pay for the interpreter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context, Failure
    from .coordinator import Coordinator
    from .errors import HandlerError, SagaError, SagaInputError, SagaSyntaxError, SagaValidationError, StoreError
    from .events import Event
    from .inputs import apply_sets, load_input, read_input
    from .interpreter import RunResult, SystemClock, cancel, resume, run
    from .operations import cancel_run, is_orphaned, lease_is_live, resume_all, resume_run, spec_drift
    from .plugins import Registry, SagaStep, handler
    from .spec import Spec, load
    from .state import RunState, StepState, fold

# public name -> defining module
_EXPORTS = {
    "Context": "context",
    "Failure": "context",
    "Coordinator": "coordinator",
    "HandlerError": "errors",
    "SagaError": "errors",
    "SagaInputError": "errors",
    "SagaSyntaxError": "errors",
    "SagaValidationError": "errors",
    "StoreError": "errors",
    "Event": "events",
    "apply_sets": "inputs",
    "load_input": "inputs",
    "read_input": "inputs",
    "RunResult": "interpreter",
    "SystemClock": "interpreter",
    "cancel": "interpreter",
    "resume": "interpreter",
    "run": "interpreter",
    "cancel_run": "operations",
    "is_orphaned": "operations",
    "lease_is_live": "operations",
    "resume_all": "operations",
    "resume_run": "operations",
    "spec_drift": "operations",
    "Registry": "plugins",
    "SagaStep": "plugins",
    "handler": "plugins",
    "Spec": "spec",
    "load": "spec",
    "RunState": "state",
    "StepState": "state",
    "fold": "state",
}

__all__ = [
    "Context",
    "Coordinator",
    "Event",
    "Failure",
    "HandlerError",
    "Registry",
    "RunResult",
    "RunState",
    "SagaError",
    "SagaInputError",
    "SagaStep",
    "SagaSyntaxError",
    "SagaValidationError",
    "Spec",
    "StepState",
    "StoreError",
    "SystemClock",
    "apply_sets",
    "cancel",
    "cancel_run",
    "fold",
    "handler",
    "is_orphaned",
    "lease_is_live",
    "load",
    "load_input",
    "read_input",
    "resume",
    "resume_all",
    "resume_run",
    "run",
    "spec_drift",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sagalang' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Public names (for tab completion)."""
    return sorted(__all__)
