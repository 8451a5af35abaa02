"""The server's state: open documents, their analyses, and the handler registries.

An analysis is what ``sagalang validate`` computes for the file, with the
editor's unsaved text in place of what is on disk (for the file and any open
file it imports): the same loader, the same rules, the same diagnostics.
Handlers come from the nearest ``pyproject.toml``'s ``[tool.sagalang]`` plugins
and the installed entry points, as for every command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from .. import ir
from ..diagnostics import Diagnostic
from ..errors import SagaError
from ..graph import SagaGraph, build
from ..plan import SagaPlan, plan_saga
from ..plugins import Registry
from ..project import Project, SourceFile, load_project
from ..validate import validate_project
from .index import Index
from .text import Braces, Text

__all__ = ["Analysis", "Document", "Workspace", "path_of", "uri_of"]


def path_of(uri: str) -> Path:
    """The file a document URI names (an unsaved document: a name in the working directory)."""
    fs = to_fs_path(uri)
    if fs is None:
        return Path.cwd() / (uri.rsplit("/", 1)[-1].replace(":", "_") or "untitled.saga")
    return Path(fs).resolve()


def uri_of(path: Path) -> str:
    """The URI of a file."""
    return from_fs_path(str(path)) or path.as_uri()


@dataclass
class Document:
    """An open document: its text and the version the editor gave it."""

    uri: str
    text: str
    version: int | None = None


@dataclass
class Analysis:
    """One document's text, the project it reaches, and every diagnostic of that project."""

    uri: str
    path: Path
    version: int | None
    text: Text
    project: Project
    diagnostics: list[Diagnostic]
    registry: Registry | None

    @property
    def source(self) -> SourceFile | None:
        """The document's own file in the project."""
        return self.project.files.get(self.path)

    @property
    def module(self) -> ir.Module | None:
        """The document's IR, when it parsed."""
        sf = self.source
        return sf.module if sf is not None else None

    @cached_property
    def index(self) -> Index | None:
        """Names defined and used in the document (None when it does not parse)."""
        return Index(self.module) if self.module is not None else None

    @cached_property
    def braces(self) -> Braces:
        """Where each block of the document ends."""
        return Braces(self.text.text)

    def own(self) -> list[Diagnostic]:
        """The diagnostics of the document itself."""
        display = self.source.display if self.source is not None else None
        return [d for d in self.diagnostics if d.file == display]

    def by_path(self) -> dict[Path, list[Diagnostic]]:
        """The diagnostics of every file the analysis reached (an empty list for a clean file)."""
        paths = {sf.display: p for p, sf in self.project.files.items()}
        out: dict[Path, list[Diagnostic]] = {p: [] for p in self.project.files}
        out.setdefault(self.path, [])
        for d in self.diagnostics:
            out.setdefault(paths.get(d.file, self.path), []).append(d)
        return out

    def scope(self) -> dict[str, tuple[ir.Saga, SourceFile]]:
        """Sagas the document may ``call``: its own and those of the files it imports."""
        return self.project.scope(self.path)

    def graph(self, saga: ir.Saga) -> SagaGraph:
        """The dependency graph of one of the document's sagas."""
        cache: dict[int, SagaGraph] = self.__dict__.setdefault("_graphs", {})
        if id(saga) not in cache:
            cache[id(saga)] = build(saga)
        return cache[id(saga)]

    def plan(self, saga: ir.Saga) -> SagaPlan | None:
        """What ``sagalang plan`` says of a saga (None when its steps form a cycle)."""
        cache: dict[int, SagaPlan | None] = self.__dict__.setdefault("_plans", {})
        if id(saga) not in cache:
            callees = {name: s for name, (s, _) in self.scope().items()}
            try:
                cache[id(saga)] = plan_saga(saga, self.source.display if self.source else "", callees)
            except ValueError:
                cache[id(saga)] = None
        return cache[id(saga)]


@dataclass
class _Registry:
    registry: Registry | None
    problem: str | None


@dataclass
class Workspace:
    """Open documents and the analyses computed for them."""

    encoding: str = "utf-16"
    plugins: tuple[str, ...] = ()
    docs: dict[str, Document] = field(default_factory=dict)
    analyses: dict[str, Analysis] = field(default_factory=dict)
    # The last IR of each document that parsed: completion keeps working while the text is broken.
    parsed: dict[str, ir.Module] = field(default_factory=dict)
    registries: dict[Path, _Registry] = field(default_factory=dict)
    on_problem: Callable[[str], None] | None = None

    def open(self, uri: str, text: str, version: int | None) -> list[str]:
        """An editor opened (or changed) a document; returns it and the open documents that import it.

        Their analyses read the old text, so they are dropped and will be computed again.
        """
        self.docs[uri] = Document(uri, text, version)
        stale = self.dependents(path_of(uri))
        for other in stale:
            self.analyses.pop(other, None)
        return [uri, *stale]

    def close(self, uri: str) -> None:
        """An editor closed a document."""
        self.docs.pop(uri, None)
        self.analyses.pop(uri, None)
        self.parsed.pop(uri, None)

    def texts(self) -> dict[Path, str]:
        """The open documents' texts by file: they stand in for the files on disk."""
        return {path_of(d.uri): d.text for d in self.docs.values()}

    def registry(self, path: Path) -> Registry | None:
        """The handlers of the project holding ``path`` (entry points and [tool.sagalang] plugins)."""
        folder = _config_folder(path)
        found = self.registries.get(folder)
        if found is None:
            try:
                found = _Registry(Registry.discover(self.plugins, cwd=folder), None)
            except SagaError as err:
                found = _Registry(None, f"sagalang: handlers not loaded, so they are not checked: {err}")
            self.registries[folder] = found
            if found.problem is not None and self.on_problem is not None:
                self.on_problem(found.problem)
        return found.registry

    def analysis(self, uri: str) -> Analysis | None:
        """The analysis of an open document at its current version (computed when stale)."""
        doc = self.docs.get(uri)
        if doc is None:
            return None
        found = self.analyses.get(uri)
        if found is not None and found.version == doc.version and found.text.text == doc.text:
            return found
        path = path_of(uri)
        registry = self.registry(path)
        project = load_project([path], None, self.texts())
        found = Analysis(
            uri,
            path,
            doc.version,
            Text(doc.text, self.encoding),
            project,
            validate_project(project, registry),
            registry,
        )
        self.analyses[uri] = found
        if found.module is not None:
            self.parsed[uri] = found.module
        return found

    def dependents(self, path: Path) -> list[str]:
        """Open documents whose last analysis read ``path`` (they import it)."""
        return [uri for uri, a in self.analyses.items() if path in a.project.files and a.path != path]


def _config_folder(path: Path) -> Path:
    """The folder of the nearest pyproject.toml above ``path`` (else its own folder)."""
    start = path.parent
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start if start.is_dir() else Path(os.getcwd())
