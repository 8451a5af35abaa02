"""How a handler call ended, in journal terms: error records, retry decisions, storable outputs.

An error is journaled as ``{"type", "message", "names"}``; ``names`` are what
``retry on`` / ``except`` match against. These functions are shared by the
forward attempts, the undos and the whole-saga retry.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from .. import ir
from ..context import Failure
from ..expr import ExprError

__all__ = [
    "CANCELLED",
    "NotCalled",
    "TimedOut",
    "backoff_delay",
    "error_info",
    "error_names",
    "expr_failure",
    "final",
    "injected_failure",
    "jsonable",
    "namespace_of",
    "should_retry",
    "timeout_error",
]

CANCELLED: Mapping[str, Any] = {"type": "Cancelled", "message": "cancelled while running", "names": ["Cancelled"]}


class NotCalled(Exception):
    """The run stopped after a step's start was journaled but before its handler ran."""


class TimedOut(Exception):
    """A handler call ran past its timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g}s")
        self.seconds = seconds


def error_names(exc: BaseException, namespace: str | None = None) -> list[str]:
    """The names ``retry on`` / ``except`` match against for ``exc``.

    A :class:`Failure`: its name (and the name's last part). Any other
    exception: its class name, ``namespace.ClassName``, and its base classes
    up to ``Exception``.
    """
    if isinstance(exc, Failure):
        names = [exc.name]
        short = exc.name.rpartition(".")[2]
        if short != exc.name:
            names.append(short)
        return names
    names = []
    for i, cls in enumerate(type(exc).__mro__):
        if cls is BaseException or cls is object:
            break
        names.append(cls.__name__)
        if i == 0 and namespace:
            names.append(f"{namespace}.{cls.__name__}")
        if cls is Exception:
            break
    return names


def error_info(exc: BaseException, namespace: str | None) -> dict[str, Any]:
    """The journal's record of ``exc`` raised by a handler of ``namespace``."""
    if isinstance(exc, Failure):
        return {"type": exc.name, "message": exc.message, "names": error_names(exc)}
    names = error_names(exc, namespace)
    return {"type": names[0], "message": str(exc) or type(exc).__name__, "names": names}


def timeout_error(seconds: float) -> dict[str, Any]:
    """The error of a call (or a saga) that ran past ``seconds``."""
    return {"type": "Timeout", "message": f"timed out after {seconds:g}s", "names": ["Timeout"]}


def final(error: Mapping[str, Any] | None) -> dict[str, Any]:
    """``step.failed`` data of a failure that is certain and not retried."""
    return {"error": error, "uncertain": False, "final": True}


def injected_failure(q: str) -> Failure:
    """The failure ``fail_at`` injects at step ``q``."""
    return Failure("sagalang.InjectedFailure", f"failure injected at step {q!r}", retryable=False)


def expr_failure(err: ExprError, what: str) -> Failure:
    """A permanent failure for an expression that could not be evaluated at run time."""
    where = f" (line {err.span.line}:{err.span.col})" if err.span.line else ""
    return Failure("sagalang.ExpressionError", f"{what}: {err}{where}", retryable=False)


def namespace_of(handler: str) -> str:
    """``payments`` of ``payments.charge``."""
    return handler.partition(".")[0]


def backoff_delay(policy: ir.RetryPolicy | ir.SagaRetry, retry: int, rnd: Callable[[], float] | None = None) -> float:
    """Seconds before retry number ``retry`` (1-based): ``initial × multiplier^(retry-1)``, capped; full jitter."""
    b = policy.backoff
    if b is None:
        return 0.0
    mult = b.multiplier or 1.0
    try:
        ms = b.initial.ms * mult ** (retry - 1)
    except OverflowError:
        ms = math.inf
    if b.max is not None:
        ms = min(ms, b.max.ms)
    if ms == math.inf:
        ms = b.initial.ms
    if isinstance(policy, ir.RetryPolicy) and policy.jitter:
        ms = (rnd or random.random)() * ms
    return ms / 1000.0


def should_retry(policy: ir.RetryPolicy | None, err: Mapping[str, Any], retryable: bool | None, attempt: int) -> bool:
    """Whether attempt number ``attempt``, which failed with ``err``, is followed by another one."""
    if policy is None or retryable is False:
        return False
    if policy.attempts is not None and attempt >= policy.attempts:
        return False
    names = err.get("names", ())
    if policy.except_ and any(n in policy.except_ for n in names):
        return False
    return not (policy.on and retryable is not True and not any(n in policy.on for n in names))


def _plain(v: Any) -> bool:
    t = type(v)
    return v is None or t is str or t is int or t is bool


def jsonable(value: Any, where: str = "output") -> Any:
    """``value`` as plain JSON data (tuples become lists); a non-retryable Failure if it is not JSON."""
    t = type(value)
    if _plain(value):
        return value
    if t is float:
        if math.isfinite(value):
            return value
        raise Failure(
            "sagalang.NotJSON", f"handler result {where} is {value!r}, which JSON cannot hold", retryable=False
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise Failure("sagalang.NotJSON", f"handler result {where} has a non-text key {k!r}", retryable=False)
            out[k] = v if _plain(v) else jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [v if _plain(v) else jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    # Subclasses of the JSON types (enums, numpy-free number types): store the plain value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return jsonable(float(value), where)
    if isinstance(value, str):
        return str.__str__(value)
    raise Failure(
        "sagalang.NotJSON",
        f"handler result {where} is a {t.__name__}, which is not JSON-serialisable "
        "(return dicts, lists, strings, numbers, booleans or None)",
        retryable=False,
    )
