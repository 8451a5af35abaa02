"""Handlers: the ``@handler`` decorator, step objects, and the registry that finds them.

Handlers come from three places: the ``sagalang.handlers`` entry-point group
(listed without importing; a namespace's module is imported the first time
one of its handlers is needed), ``--plugin MODULE_OR_FILE``, and
``[tool.sagalang] plugins`` in the nearest ``pyproject.toml``. A module is
scanned for objects marked by :func:`handler`; nothing is registered globally.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from .errors import HandlerError

__all__ = [
    "CONTEXT_PARAM",
    "ENTRY_POINT_GROUP",
    "Handler",
    "HandlerInfo",
    "Param",
    "Registry",
    "SagaStep",
    "handler",
]

ENTRY_POINT_GROUP = "sagalang.handlers"
CONTEXT_PARAM = "ctx"
_MARK = "__sagalang_handler__"

F = TypeVar("F")


def handler(name: str) -> Callable[[F], F]:
    """Mark a function (sync or async), a step class or a step object as handler ``name``.

    A function's parameters are the call's argument names; a parameter named
    ``ctx`` receives the :class:`~sagalang.context.Context`. A class or object
    with ``execute``/``compensate``/``can_compensate`` serves as a step's do and undo.
    """
    if not isinstance(name, str) or "." not in name or not all(p.isidentifier() for p in name.split(".")):
        raise ValueError(f"handler name must be 'namespace.name', got {name!r}")

    def mark(obj: F) -> F:
        setattr(obj, _MARK, name)
        return obj

    return mark


@runtime_checkable
class SagaStep(Protocol):
    """The seed's step protocol: one object provides a step's action and its undo.

    ``execute(ctx, **args)`` returns the step's output; ``compensate(ctx, **args)``
    undoes it (``ctx.result`` holds the output, or ``None`` if the outcome is
    uncertain); ``can_compensate()`` says whether an undo exists at all.
    """

    def execute(self, ctx: Any, **args: Any) -> Any:
        """Do the step's work and return its output."""

    def compensate(self, ctx: Any, **args: Any) -> Any:
        """Undo the step's work; must tolerate there being nothing to undo."""

    def can_compensate(self) -> bool:
        """Whether this step can be undone."""


@dataclass(frozen=True, slots=True)
class Param:
    """One handler parameter."""

    name: str
    required: bool
    annotation: str | None = None


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """What the registry knows of one handler, without calling it."""

    name: str
    kind: Literal["function", "step"]
    params: tuple[Param, ...] | None  # None: accepts any argument (**kwargs)
    source: str
    is_async: bool = False
    doc: str = ""
    distribution: str | None = None


@dataclass(frozen=True)
class Handler:
    """A resolved handler: the callable (or step object) and its info."""

    info: HandlerInfo
    func: Callable[..., Any] | None = None
    step: Any = None
    wants_context: bool = False


def _params_of(fn: Callable[..., Any], skip_self: bool = False) -> tuple[tuple[Param, ...] | None, bool]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, False
    params: list[Param] = []
    wants_ctx = False
    any_kw = False
    for i, p in enumerate(sig.parameters.values()):
        if skip_self and i == 0 and p.name == "self":
            continue
        if p.name == CONTEXT_PARAM:
            wants_ctx = True
            continue
        if p.kind is p.VAR_KEYWORD:
            any_kw = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        ann = None
        if p.annotation is not p.empty:
            ann = (
                p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
            )
        params.append(Param(p.name, p.default is p.empty, ann))
    return (None if any_kw else tuple(params)), wants_ctx


def _describe(name: str, obj: Any, source: str, distribution: str | None) -> Handler:
    is_step = all(callable(getattr(obj, m, None)) for m in ("execute", "compensate")) and not inspect.isfunction(obj)
    if is_step:
        target: Any = obj() if inspect.isclass(obj) else obj
        params, wants_ctx = _params_of(target.execute)
        info = HandlerInfo(
            name,
            "step",
            params,
            source,
            inspect.iscoroutinefunction(target.execute),
            inspect.getdoc(target) or "",
            distribution,
        )
        return Handler(info, step=target, wants_context=True)
    if not callable(obj):
        raise HandlerError(f"handler {name!r} from {source} is neither callable nor a step object")
    params, wants_ctx = _params_of(obj)
    info = HandlerInfo(
        name,
        "function",
        params,
        source,
        inspect.iscoroutinefunction(obj),
        (inspect.getdoc(obj) or "").split("\n")[0],
        distribution,
    )
    return Handler(info, func=obj, wants_context=wants_ctx)


def _scan(module: ModuleType) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for value in list(vars(module).values()):
        name = getattr(value, _MARK, None) if not isinstance(value, ModuleType) else None
        if isinstance(name, str) and id(value) not in seen:
            seen.add(id(value))
            found.append((name, value))
    return found


def _import_file(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"sagalang_plugin_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise HandlerError(f"cannot load plugin file {path}")
    # Like a script, a plugin file may import the modules that sit beside it.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[mod_name]
        raise HandlerError(f"plugin file {path} failed to import: {type(err).__name__}: {err}") from err
    return module


@dataclass
class _Lazy:
    namespace: str
    value: str  # "module" or "module:attr"
    distribution: str | None


@dataclass
class Registry:
    """Handlers by name; entry-point namespaces are imported on first use."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    lazy: dict[str, list[_Lazy]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    # ---- building ---------------------------------------------------------
    def add(self, name: str, obj: Any, source: str = "<api>", distribution: str | None = None) -> Handler:
        """Register ``obj`` (function, step class or step object) as ``name``."""
        h = _describe(name, obj, source, distribution)
        self.handlers[name] = h
        return h

    def add_module(self, module: ModuleType, distribution: str | None = None) -> list[str]:
        """Register every marked object of ``module``; returns their names."""
        names = []
        for name, obj in _scan(module):
            self.add(name, obj, f"{module.__name__}", distribution)
            names.append(name)
        return names

    def load_plugin(self, spec: str, base: Path | None = None) -> list[str]:
        """``--plugin``: a module name (``pkg.mod``) or a ``.py`` file path."""
        path = Path(spec)
        if base is not None and not path.is_absolute():
            path = base / path
        if spec.endswith(".py") or path.is_file():
            if not path.is_file():
                raise HandlerError(f"plugin file not found: {spec}")
            module = _import_file(path.resolve())
            names = self.add_module(module)
            for name in names:
                self.handlers[name] = Handler(
                    HandlerInfo(**{**_info_dict(self.handlers[name].info), "source": str(path)}),
                    self.handlers[name].func,
                    self.handlers[name].step,
                    self.handlers[name].wants_context,
                )
            return names
        try:
            module = importlib.import_module(spec)
        except Exception as err:
            raise HandlerError(f"plugin module {spec!r} failed to import: {type(err).__name__}: {err}") from err
        return self.add_module(module)

    def add_entry_points(self) -> None:
        """Record the ``sagalang.handlers`` entry points without importing them."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            ns = ep.name.split(".")[0]
            self.lazy.setdefault(ns, []).append(_Lazy(ep.name, ep.value, dist))

    def add_pyproject(self, start: Path | None = None) -> Path | None:
        """Load ``[tool.sagalang] plugins`` from the nearest pyproject.toml; returns its path."""
        folder = (start or Path.cwd()).resolve()
        for candidate in (folder, *folder.parents):
            py = candidate / "pyproject.toml"
            if py.is_file():
                try:
                    data = tomllib.loads(py.read_text(encoding="utf-8"))
                except (OSError, tomllib.TOMLDecodeError) as err:
                    raise HandlerError(f"{py}: cannot read [tool.sagalang]: {err}") from err
                plugins = data.get("tool", {}).get("sagalang", {}).get("plugins", [])
                if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
                    raise HandlerError(f"{py}: [tool.sagalang] plugins must be a list of module names or files")
                for plugin in plugins:
                    self.load_plugin(plugin, base=candidate)
                return py
        return None

    @classmethod
    def discover(
        cls, plugins: Iterable[str] = (), cwd: Path | None = None, entry_points: bool = True, pyproject: bool = True
    ) -> Registry:
        """The registry a CLI command uses: entry points, pyproject plugins, then ``--plugin``."""
        reg = cls()
        if entry_points:
            reg.add_entry_points()
        if pyproject:
            reg.add_pyproject(cwd)
        for p in plugins:
            reg.load_plugin(p)
        return reg

    # ---- lookup -----------------------------------------------------------
    def _load_namespace(self, ns: str) -> None:
        for lazy in self.lazy.pop(ns, []):
            mod_name, _, attr = lazy.value.partition(":")
            origin = f"distribution {lazy.distribution!r}" if lazy.distribution else "an entry point"
            try:
                module = importlib.import_module(mod_name.strip())
            except Exception as err:
                raise HandlerError(
                    f"handlers {lazy.namespace!r} from {origin} failed to import ({lazy.value}): "
                    f"{type(err).__name__}: {err}"
                ) from err
            if attr:
                obj: Any = module
                for part in attr.strip().split("."):
                    obj = getattr(obj, part, None)
                if obj is None:
                    raise HandlerError(f"handlers {lazy.namespace!r} from {origin}: {lazy.value} does not exist")
                name = getattr(obj, _MARK, lazy.namespace)
                self.add(name, obj, lazy.value, lazy.distribution)
            else:
                self.add_module(module, lazy.distribution)

    def namespaces(self) -> set[str]:
        """Every namespace with at least one handler, loaded or not."""
        return {n.split(".")[0] for n in self.handlers} | set(self.lazy)

    def get(self, name: str) -> Handler | None:
        """The handler called ``name``, importing its namespace if needed (None if unknown)."""
        if name not in self.handlers:
            ns = name.split(".")[0]
            if ns in self.lazy:
                self._load_namespace(ns)
        return self.handlers.get(name)

    def resolve(self, name: str) -> Handler:
        """Like :meth:`get` but raises HandlerError naming the unknown handler."""
        h = self.get(name)
        if h is None:
            raise HandlerError(f"no handler named {name!r} is registered")
        return h

    def all(self) -> list[Handler]:
        """Every handler, importing all namespaces; sorted by name."""
        for ns in list(self.lazy):
            self._load_namespace(ns)
        return [self.handlers[n] for n in sorted(self.handlers)]

    def names(self) -> list[str]:
        """Names of the handlers loaded so far."""
        return sorted(self.handlers)


def _info_dict(info: HandlerInfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in info.__slots__}
