"""Handlers for the tutorial's trip saga: a pretend airline, hotel, card processor and mailer.

They keep their state in ``bookings.json`` in the working folder (or the file
``$TRIP_STATE`` names), so you can see what a run did, and so a run resumed
by a new process sees what the crashed one did.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagalang.context import Context, Failure
from sagalang.plugins import handler

SOLD_OUT = {"Atlantis"}  # no rooms there: the room step fails for good
PRICES = {"flight": 180.0, "night": 95.0}
_lock = threading.Lock()  # the flight and the room are booked concurrently, in threads


@contextmanager
def state() -> Iterator[dict[str, Any]]:
    """The services' state, read and written back under a lock."""
    path = Path(os.environ.get("TRIP_STATE", "bookings.json"))
    with _lock:
        data = json.loads(path.read_text()) if path.exists() else {}
        for table in ("flights", "rooms", "charges", "mail"):
            data.setdefault(table, {})
        yield data
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@handler("flights.book")
def book_flight(ctx: Context, traveller: str, to: str) -> dict[str, Any]:
    """Book a seat. A retry or a resume repeats the idempotency key and gets the same booking."""
    with state() as s:
        booking = s["flights"].get(ctx.idempotency_key)
        if booking is None:
            ref = f"FL-{len(s['flights']) + 1:03d}"
            booking = {"ref": ref, "traveller": traveller, "to": to, "price": PRICES["flight"], "status": "booked"}
            s["flights"][ctx.idempotency_key] = booking
    return {"ref": booking["ref"], "price": booking["price"]}


@handler("flights.cancel")
def cancel_flight(ctx: Context) -> None:
    """Undo flights.book: the undo gets the same idempotency key as the booking it undoes.

    That works even when the booking's outcome is unknown (it timed out, or the
    process died during it), and there may be nothing to cancel at all.
    """
    with state() as s:
        booking = s["flights"].get(ctx.idempotency_key)
        if booking is not None:
            booking["status"] = "cancelled"


@handler("rooms.book")
def book_room(ctx: Context, guest: str, city: str, nights: int) -> dict[str, Any]:
    """Book a room; fails for good (rooms.SoldOut) where nothing is free."""
    if city in SOLD_OUT:
        raise Failure("rooms.SoldOut", f"no rooms left in {city}", retryable=False)
    with state() as s:
        booking = s["rooms"].get(ctx.idempotency_key)
        if booking is None:
            ref = f"RM-{len(s['rooms']) + 1:03d}"
            price = PRICES["night"] * nights
            booking = {"ref": ref, "guest": guest, "city": city, "price": price, "status": "booked"}
            s["rooms"][ctx.idempotency_key] = booking
    return {"ref": booking["ref"], "price": booking["price"]}


@handler("rooms.cancel")
def cancel_room(ctx: Context) -> None:
    """Undo rooms.book, found by the idempotency key; there may be nothing to cancel."""
    with state() as s:
        booking = s["rooms"].get(ctx.idempotency_key)
        if booking is not None:
            booking["status"] = "cancelled"


@handler("cards.charge")
def charge(ctx: Context, card: str, amount: float) -> dict[str, Any]:
    """Charge the card once per idempotency key.

    ``TRIP_CRASH=charge`` kills the process right after the charge is made,
    before sagalang has journaled its result: the tutorial's crash.
    """
    with state() as s:
        done = s["charges"].setdefault(ctx.idempotency_key, {"card": card[-4:], "amount": amount})
    if os.environ.get("TRIP_CRASH") == "charge":
        os._exit(137)  # like kill -9: no cleanup, no journal entry for the result
    return {"amount": done["amount"]}


@handler("mail.send")
def send(ctx: Context, to: str, text: str) -> dict[str, str]:
    """Queue a mail (once per idempotency key)."""
    with state() as s:
        s["mail"].setdefault(ctx.idempotency_key, {"to": to, "text": text})
    return {"queued": ctx.idempotency_key}
