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
    from .interpreter import RunResult, SystemClock, cancel, resume, run
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
    "RunResult": "interpreter",
    "SystemClock": "interpreter",
    "cancel": "interpreter",
    "resume": "interpreter",
    "run": "interpreter",
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
    "cancel",
    "fold",
    "handler",
    "load",
    "resume",
    "run",
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
