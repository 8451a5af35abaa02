"""The worked example of docs/testing.md: given a spec and an input, when a step
fails, expect the undo order and the final state. Run it with ``pytest docs/testing``.

The ``saga`` fixture comes from sagalang's pytest plugin (installed with sagalang).
"""

from pathlib import Path

ORDER = Path(__file__).resolve().parents[2] / "specs" / "examples" / "order.saga"
INPUT = {"order_id": "A-1", "sku": "BOOK-1", "qty": 1, "amount": 25.0, "card": "4242424242424242"}


def test_a_failed_shipment_is_rolled_back(saga):
    # given the order saga, when the pivot (ship) fails, the label, the charge
    # and the reservation are undone, most recent first
    result = saga(ORDER).given(INPUT).when_fails("ship").run()
    result.expect(status="compensated", compensated=["label", "charge", "reserve"])


def test_express_orders_also_undo_the_upgrade(saga):
    result = saga(ORDER).given(INPUT, express=True).when_fails("ship").run()
    assert result.compensated[-2:] == ["charge", "reserve"]
    assert set(result.compensated[:2]) == {"label", "upgrade"}


def test_after_the_pivot_nothing_is_undone(saga):
    # notify follows the pivot: it is retried, never compensated
    saga(ORDER).given(INPUT).when_fails("notify").run().expect(status="stuck", compensated=[])


def test_a_crash_mid_saga_is_resumed_to_completion(saga):
    saga(ORDER).given(INPUT).when_crashes_after(5).run().expect(status="completed", compensated=[])
