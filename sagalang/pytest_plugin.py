"""pytest plugin (entry point ``pytest11``): fixtures to test sagas given/when/expect.

    def test_shipping_failure_rolls_back(saga):
        (saga("specs/examples/order.saga")
            .given(order_id="A1", sku="BOOK", qty=1, amount=20.0, card="4242")
            .when_fails("ship")
            .run()
            .expect(status="compensated", compensated=["label", "charge", "reserve"]))

Handlers are generated fakes that record effects and undos unless a registry
is passed (``saga(path, registry=...)``); every saga invariant is checked too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import Scenario


@pytest.fixture
def saga() -> Callable[..., Scenario]:
    """Load a spec as a Scenario: ``saga(path, registry=None, saga=None)``."""
    from .testing import scenario

    def load(path: str | Path, registry: Any = None, saga: str | None = None) -> Scenario:
        return scenario(path, registry=registry, saga=saga)

    return load


@pytest.fixture
def saga_failure_points() -> Callable[..., Any]:
    """Explore every failure point of a spec: ``saga_failure_points(path)`` returns the Report."""
    from .testing import explore_file

    return explore_file
