"""The runtime: runs a validated saga with plugin handlers, journal first.

Every transition is appended to the store before the next action (the step's
``step.started`` before its handler is called, its result after), then folded
into the run's state and handed to the listeners; a resume folds the stored
journal and continues from there. The modules, one concern each:

- :mod:`.api` — ``run``, ``resume``, ``cancel``: records, leases, resumes;
- :mod:`.driver` — the whole run: forward, then completed, stuck or rolled back;
- :mod:`.forward` — steps as their dependencies complete (:mod:`.fanout` per item);
- :mod:`.schedule` — what runs next and the undo order, decided from the state (pure);
- :mod:`.attempt` — one step's calls: retries, timeouts, the handler's context;
- :mod:`.compensation` — undoing completed steps in reverse order;
- :mod:`.cancellation` — why a run stopped and what a cancel interrupts;
- :mod:`.saga_retry` — whole-saga retry after a clean rollback;
- :mod:`.journal` — the one way a run appends to its journal and folds it;
- :mod:`.calls` — resolving and calling handlers; :mod:`.outcome` — errors and retry decisions.

The rules are written down in ``docs/semantics.md``.
"""

from __future__ import annotations

from .api import cancel, drive, live_run, new_run_id, prepare_resume, resume, run, start
from .clock import Clock, SystemClock
from .outcome import backoff_delay, error_names
from .run import Middleware, Run, RunResult, StepMiddleware

__all__ = [
    "Clock",
    "Middleware",
    "Run",
    "RunResult",
    "StepMiddleware",
    "SystemClock",
    "backoff_delay",
    "cancel",
    "drive",
    "error_names",
    "live_run",
    "new_run_id",
    "prepare_resume",
    "resume",
    "run",
    "start",
]
