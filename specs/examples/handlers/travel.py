"""Handlers of travel.saga: pricing, seats, hotel rooms and rental cars (simulated).

Failures are driven by data: ``seed_capacity("seats:CITY", n)`` (airline.SoldOut),
``seed_capacity("rooms:CITY", n)`` (hotels.NoVacancy), ``seed_capacity("cars:CITY", n)``
(cars.Unavailable); unknown resources start with 20 free units. Payments and
e-mail come from shop.py.
"""

from __future__ import annotations

import hashlib
from typing import Any

# The shared effects module sits beside this file (plugin files may import their neighbours).
import sagalang_examples_effects as fx

from sagalang.context import Context, Failure
from sagalang.plugins import handler

# Cities without a rental desk: the quote says so, and the car step is skipped.
NO_CARS = frozenset({"Venice"})
SEAT_PRICE = 140.0
ROOM_PRICE = 95.0
CAR_PRICE = 45.0


def _id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


@handler("pricing.quote")
def quote(ctx: Context, destination: str, nights: int, travellers: int) -> dict[str, Any]:
    """Price a trip (read-only): per-person fare, a group discount, whether cars can be rented."""
    with fx.transaction() as conn:
        fx.consume_fault(conn, "pricing.quote")
    if travellers <= 0:
        raise Failure("pricing.NoTravellers", "a trip needs at least one traveller", retryable=False)
    per_person = SEAT_PRICE + 10.0 * nights
    discount = round(0.05 * per_person * travellers, 2) if travellers >= 3 else 0.0
    return {
        "destination": destination,
        "per_person": per_person,
        "discount": discount,
        "car_available": destination not in NO_CARS,
    }


def _book(
    ctx: Context, kind: str, resource: str, units: int, error: str, args: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    def effect(conn: Any) -> dict[str, Any]:
        left = fx.take(conn, "capacity", "resource", resource, units, fx.CAPACITY_DEFAULT)
        if left is None:
            raise Failure(error, f"no {resource.split(':')[0]} left in {resource.split(':')[1]}", retryable=False)
        return {**extra, "confirmation": _id(kind.split(".")[0][:1].upper(), fx.effect_key(ctx)), "units": units}

    result: dict[str, Any] = fx.apply(ctx, kind, {**args, "resource": resource, "units": units}, effect)
    return result


def _release(ctx: Context, kind: str) -> dict[str, Any]:
    def reverse(conn: Any, args: dict[str, Any], result: dict[str, Any]) -> None:
        fx.give_back(conn, "capacity", "resource", args["resource"], args["units"])

    out: dict[str, Any] = fx.undo(ctx, kind, reverse)
    return out


@handler("airline.book_seat")
def book_seat(ctx: Context, trip: str, passenger: str, destination: str) -> dict[str, Any]:
    """Book one seat for ``passenger``; fails with airline.SoldOut."""
    booking = _book(
        ctx,
        "airline.book_seat",
        f"seats:{destination}",
        1,
        "airline.SoldOut",
        {"trip": trip, "passenger": passenger},
        {"passenger": passenger, "price": SEAT_PRICE},
    )
    return {**booking, "seat": booking["confirmation"]}


@handler("airline.cancel_seat")
def cancel_seat(ctx: Context, passenger: str, seat: str | None = None) -> dict[str, Any]:
    """Cancel this traveller's seat (``seat`` is null when the booking's outcome is unknown)."""
    return _release(ctx, "airline.cancel_seat")


@handler("hotels.reserve")
def reserve_hotel(ctx: Context, trip: str, city: str, nights: int, rooms: int, extra_bed: bool) -> dict[str, Any]:
    """Reserve ``rooms`` rooms; fails with hotels.NoVacancy."""
    price = rooms * nights * ROOM_PRICE + (25.0 * nights if extra_bed else 0.0)
    return _book(
        ctx,
        "hotels.reserve",
        f"rooms:{city}",
        rooms,
        "hotels.NoVacancy",
        {"trip": trip, "nights": nights, "extra_bed": extra_bed},
        {"price": price, "rooms": rooms},
    )


@handler("hotels.cancel")
def cancel_hotel(ctx: Context, trip: str) -> dict[str, Any]:
    """Cancel this trip's hotel rooms."""
    return _release(ctx, "hotels.cancel")


@handler("cars.rent")
def rent(ctx: Context, trip: str, city: str, days: int) -> dict[str, Any]:
    """Rent a car for ``days``; fails with cars.Unavailable."""
    return _book(
        ctx,
        "cars.rent",
        f"cars:{city}",
        1,
        "cars.Unavailable",
        {"trip": trip, "days": days},
        {"price": CAR_PRICE * days},
    )


@handler("cars.return_car")
async def return_car(ctx: Context, trip: str) -> dict[str, Any]:
    """Cancel this trip's car (async, to show that handlers may be coroutines)."""
    return _release(ctx, "cars.return_car")
