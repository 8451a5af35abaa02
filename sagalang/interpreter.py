"""The interpreter's public entry points (the runtime itself lives in :mod:`sagalang.runtime`).

``run``, ``resume`` and ``cancel`` drive sagas; ``RunResult`` is how a run
ended; ``Clock``/``SystemClock`` and the middleware types are what callers
inject. The rules the runtime implements are written down in ``docs/semantics.md``.
"""

from __future__ import annotations

from .runtime import (
    Clock,
    Middleware,
    RunResult,
    StepMiddleware,
    SystemClock,
    backoff_delay,
    cancel,
    error_names,
    live_run,
    prepare_resume,
    resume,
    run,
    start,
)

__all__ = [
    "Clock",
    "Middleware",
    "RunResult",
    "StepMiddleware",
    "SystemClock",
    "backoff_delay",
    "cancel",
    "error_names",
    "live_run",
    "prepare_resume",
    "resume",
    "run",
    "start",
]
