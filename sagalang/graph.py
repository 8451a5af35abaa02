"""The saga as a networkx DAG: resolved dependencies, forward levels, compensation order.

Ordering rules: a step without ``after`` depends on the item written before
it (a step, or every step of a parallel block); ``after a, b`` replaces that
implicit edge; steps inside a ``parallel`` block depend on what preceded the
block. Unknown names in ``after`` are left out here (the validator reports them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx

from . import ir

__all__ = ["SagaGraph", "build"]


@dataclass(frozen=True)
class SagaGraph:
    """A saga with its dependency graph (edge ``a -> b``: b runs after a)."""

    saga: ir.Saga
    steps: dict[str, ir.Step]
    deps: dict[str, tuple[str, ...]]
    graph: nx.DiGraph = field(repr=False)
    order: tuple[str, ...]  # source order of first definitions

    @cached_property
    def is_dag(self) -> bool:
        """False when ``after`` edges form a cycle."""
        return bool(nx.is_directed_acyclic_graph(self.graph))

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.order)}

    @cached_property
    def topo(self) -> tuple[str, ...]:
        """Steps in a dependency-respecting order, ties broken by source order."""
        return tuple(nx.lexicographical_topological_sort(self.graph, key=self._index.__getitem__))

    @cached_property
    def levels(self) -> tuple[tuple[str, ...], ...]:
        """Forward order as parallel levels: each level can run once the earlier ones are done."""
        return tuple(tuple(sorted(gen, key=self._index.__getitem__)) for gen in nx.topological_generations(self.graph))

    @cached_property
    def _masks(self) -> dict[str, int]:
        # One bit per step: a step's mask holds every step guaranteed to finish
        # before it. Linear in the number of edges, and a reachability test is one AND.
        index = self._index
        masks: dict[str, int] = {}
        for name in self.topo:
            acc = 0
            for dep in self.deps[name]:
                acc |= masks[dep] | (1 << index[dep])
            masks[name] = acc
        return masks

    def mask(self, names: Iterable[str]) -> int:
        """``names`` as a bit mask comparable with :meth:`ancestor_mask` (one bit per step)."""
        index = self._index
        out = 0
        for name in names:
            out |= 1 << index[name]
        return out

    def ancestor_mask(self, name: str) -> int:
        """The steps guaranteed to have finished before ``name`` starts, as a bit mask."""
        return self._masks[name]

    @cached_property
    def dependents(self) -> dict[str, tuple[str, ...]]:
        """Each step's direct dependents, in source order."""
        found: dict[str, list[str]] = {n: [] for n in self.order}
        for name in self.order:
            for dep in self.deps[name]:
                found[dep].append(name)
        return {n: tuple(ds) for n, ds in found.items()}

    @cached_property
    def roots(self) -> tuple[str, ...]:
        """Steps that depend on nothing, in source order."""
        return tuple(n for n in self.order if not self.deps[n])

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when ``a`` is guaranteed to have finished before ``b`` starts."""
        return bool(self._masks[b] >> self._index[a] & 1)

    def ancestors(self, name: str) -> frozenset[str]:
        """Steps guaranteed to have finished (completed or been skipped) before ``name`` starts."""
        cache: dict[str, frozenset[str]] = self.__dict__.setdefault("_ancestor_sets", {})
        found = cache.get(name)
        if found is None:
            mask = self._masks[name]
            order = self.order
            found = cache[name] = frozenset(order[i] for i in range(mask.bit_length()) if mask >> i & 1)
        return found

    def descendants(self, name: str) -> frozenset[str]:
        """Steps that can only start after ``name`` finished."""
        return frozenset(nx.descendants(self.graph, name))

    def concurrent(self, name: str) -> frozenset[str]:
        """Steps that may run at the same time as ``name`` (neither before nor after it)."""
        return frozenset(self.steps) - self.ancestors(name) - self.descendants(name) - {name}

    def reverse_order(self, names: set[str] | frozenset[str]) -> list[str]:
        """``names`` in reverse dependency order (dependents first), ties by reverse source order."""
        return [n for n in reversed(self.topo) if n in names]

    def reverse_levels(self, names: set[str] | frozenset[str]) -> list[list[str]]:
        """``names`` grouped for parallel compensation: a group starts once the groups before it are done.

        A step's undo waits for the undo of every step in ``names`` that depends on it.
        """
        level: dict[str, int] = {}
        for name in reversed(self.topo):
            if name in names:
                later = self.descendants(name) & names
                level[name] = 1 + max((level[d] for d in later), default=-1)
        groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for name in self.order:
            if name in level:
                groups[level[name]].append(name)
        return groups


def _deps_of(step: ir.Step, implicit: list[str]) -> tuple[str, ...]:
    if step.after is not None:
        return tuple(dict.fromkeys(ref.name for ref in step.after))
    return tuple(implicit)


def build(saga: ir.Saga) -> SagaGraph:
    """Resolve every step's dependencies and build the DAG (duplicates: first one wins)."""
    steps: dict[str, ir.Step] = {}
    deps: dict[str, tuple[str, ...]] = {}
    previous: list[str] = []
    for item in saga.body:
        if isinstance(item, ir.Parallel):
            block: list[str] = []
            for step in item.steps:
                if step.name not in steps:
                    steps[step.name] = step
                    deps[step.name] = _deps_of(step, previous)
                block.append(step.name)
            if block:
                previous = list(dict.fromkeys(block))
        else:
            if item.name not in steps:
                steps[item.name] = item
                deps[item.name] = _deps_of(item, previous)
            previous = [item.name]
    graph = nx.DiGraph()
    graph.add_nodes_from(steps)
    for name, ds in deps.items():
        kept = tuple(d for d in ds if d in steps and d != name)
        deps[name] = kept
        graph.add_edges_from((d, name) for d in kept)
    return SagaGraph(saga, steps, deps, graph, tuple(steps))
