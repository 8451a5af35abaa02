"""Loading spec files: reading bytes safely, parsing, following imports.

A :class:`Project` holds every file reached from the paths the user named,
with the file-level diagnostics (unreadable, not UTF-8, syntax errors,
imports that escape the root, are missing or form a cycle).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .diagnostics import Diagnostic, diagnostic
from .errors import SagaSyntaxError
from .parser import MAX_SOURCE_BYTES, parse
from .source import Span

__all__ = ["Project", "SourceFile", "decode_source", "display_path", "find_root", "find_spec_files", "load_project"]

SPEC_SUFFIX = ".saga"
_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages"}


@dataclass
class SourceFile:
    """One spec file: where it is, its text and its parsed module (when it parsed)."""

    path: Path
    display: str
    text: str | None = None
    module: ir.Module | None = None
    imports: list[Path] = field(default_factory=list)


@dataclass
class Project:
    """Every file reached from the named paths, with file-level diagnostics."""

    root: Path
    files: dict[Path, SourceFile] = field(default_factory=dict)
    entries: list[Path] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def text_of(self, display: str) -> str | None:
        """Source text by display path (for snippets in reports)."""
        for sf in self.files.values():
            if sf.display == display:
                return sf.text
        return None

    def scope(self, path: Path) -> dict[str, tuple[ir.Saga, SourceFile]]:
        """Sagas callable from ``path``: its own and those of the files it imports directly."""
        out: dict[str, tuple[ir.Saga, SourceFile]] = {}
        sf = self.files.get(path)
        if sf is None:
            return out
        for other in [*sf.imports, path]:
            osf = self.files.get(other)
            if osf is not None and osf.module is not None:
                for saga in osf.module.sagas:
                    out.setdefault(saga.name, (saga, osf))
        return out

    def modules(self) -> Iterator[SourceFile]:
        """Files that parsed, in a stable order."""
        for path in sorted(self.files):
            sf = self.files[path]
            if sf.module is not None:
                yield sf


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def find_root(path: Path) -> Path:
    """The spec root: nearest ancestor holding pyproject.toml or .git, else the file's folder."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            return folder
    return start


def find_spec_files(
    paths: Iterable[str | Path], texts: Mapping[Path, str] | None = None
) -> tuple[list[Path], list[Diagnostic]]:
    """Expand folders into their ``*.saga`` files (hidden folders skipped); ``texts``' files exist too."""
    found: list[Path] = []
    diags: list[Diagnostic] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
                for name in sorted(filenames):
                    if name.endswith(SPEC_SUFFIX):
                        found.append(Path(dirpath, name).resolve())
        elif p.exists() or (texts is not None and p.resolve() in texts):
            found.append(p.resolve())
        else:
            diags.append(diagnostic("E001", f"no such file or folder: {raw}", str(raw)))
    return list(dict.fromkeys(found)), diags


def _position(data: bytes, offset: int) -> Span:
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return Span(line, col, line, col + 1)


def decode_source(data: bytes, display: str) -> tuple[str | None, Diagnostic | None]:
    """Bytes to text, or a diagnostic naming the first offending byte."""
    if len(data) > MAX_SOURCE_BYTES:
        mib = len(data) / (1024 * 1024)
        return None, diagnostic(
            "E004",
            f"file is {mib:.1f} MiB; specs may be at most {MAX_SOURCE_BYTES // (1024 * 1024)} MiB",
            display,
            hint="split the saga into files joined by import and call",
        )
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        if 0 <= nul < err.start:
            return None, diagnostic("E003", "NUL byte in file (is this a binary file?)", display, _position(data, nul))
        return None, diagnostic(
            "E002",
            f"file is not UTF-8 text: byte 0x{data[err.start]:02x} cannot be decoded",
            display,
            _position(data, err.start),
            hint="save the file as UTF-8",
        )
    if nul != -1:
        return None, diagnostic("E003", "NUL byte in file (is this a binary file?)", display, _position(data, nul))
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None


def _json_hint(text: str) -> str | None:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return "this looks like JSON; a spec is a .saga file (`sagalang export` turns a spec into JSON, not back)"
    return None


def read_file(path: Path, display: str, text: str | None = None) -> tuple[SourceFile, list[Diagnostic]]:
    """Read and parse one file (or parse ``text``, the file's unsaved contents); never raises for a bad file."""
    sf = SourceFile(path, display)
    if text is None:
        try:
            data = path.read_bytes()
        except OSError as err:
            return sf, [diagnostic("E001", f"cannot read file: {err.strerror or err}", display)]
        text, problem = decode_source(data, display)
        if problem is not None:
            return sf, [problem]
    assert text is not None
    sf.text = text
    try:
        sf.module = parse(text, display)
    except SagaSyntaxError as err:
        hint = err.hint
        if err.span.line == 1 and err.span.col <= len(text) - len(text.lstrip()) + 1:
            hint = _json_hint(text) or hint
        return sf, [diagnostic(err.code, err.message, display, err.span, hint)]
    except RecursionError:
        return sf, [diagnostic("E014", "nesting too deep to parse", display, Span(1, 1, 1, 2))]
    if not sf.module.sagas:
        first = Span(1, 1, 1, 2)
        msg = "empty file: no saga declared" if not text.strip() else "no saga declared in this file"
        return sf, [diagnostic("E005", msg, display, first, hint="declare one with `saga NAME { ... }`")]
    return sf, []


def load_project(
    paths: Iterable[str | Path], root: str | Path | None = None, texts: Mapping[Path, str] | None = None
) -> Project:
    """Read the named files (folders expanded) and everything they import.

    ``texts`` maps resolved paths to contents that replace what is on disk
    (an editor's unsaved buffers); such a file need not exist on disk.
    """
    texts = texts or {}
    files, diags = find_spec_files(paths, texts)
    root_path = Path(root).resolve() if root is not None else (find_root(files[0]) if files else Path.cwd())
    project = Project(root_path, entries=files, diagnostics=diags)
    queue = list(files)
    while queue:
        path = queue.pop(0)
        if path in project.files:
            continue
        sf, problems = read_file(path, display_path(path), texts.get(path))
        project.files[path] = sf
        project.diagnostics.extend(problems)
        if sf.module is None:
            continue
        for imp in sf.module.imports:
            try:
                target = (path.parent / imp.path).resolve()
                exists = target in texts or target.is_file()
            except (OSError, ValueError):  # a NUL byte, or a name too long for the file system
                target, exists = path.parent, False
            if not target.is_relative_to(project.root):
                project.diagnostics.append(
                    diagnostic(
                        "E701",
                        f"import {imp.path!r} escapes the spec root {display_path(project.root)}",
                        sf.display,
                        imp.span,
                        hint="keep imported specs inside the project (or pass --root)",
                    )
                )
                continue
            if not exists:
                project.diagnostics.append(
                    diagnostic("E703", f"imported file {imp.path!r} not found", sf.display, imp.span)
                )
                continue
            sf.imports.append(target)
            queue.append(target)
    _import_cycles(project)
    return project


def _import_cycles(project: Project) -> None:
    import networkx as nx

    g = nx.DiGraph()
    for path, sf in project.files.items():
        g.add_node(path)
        g.add_edges_from((path, t) for t in sf.imports)
    for cycle in nx.simple_cycles(g):
        first = min(cycle)
        sf = project.files[first]
        nxt = cycle[(cycle.index(first) + 1) % len(cycle)]
        imp = next(
            (i for i in (sf.module.imports if sf.module else ()) if (first.parent / i.path).resolve() == nxt),
            None,
        )
        names = " -> ".join(
            project.files[p].display for p in [*cycle[cycle.index(first) :], *cycle[: cycle.index(first)], first]
        )
        project.diagnostics.append(
            diagnostic("E702", f"import cycle: {names}", sf.display, imp.span if imp else Span(1, 1, 1, 2))
        )
