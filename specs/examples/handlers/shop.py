"""Handlers of order.saga (and the payments/email ones travel.saga shares): simulated services.

Failures are driven by data: an SKU whose stock is too low (``seed_stock``), a card
marked to decline (``seed_card``, or the test card 4000-0000-0000-0002), a
destination country the carrier does not serve (``AQ``), an e-mail address
without ``@``. ``inject_fault(handler, n)`` makes the next n calls fail transiently.
"""

from __future__ import annotations

import hashlib
from typing import Any

# The shared effects module sits beside this file (plugin files may import their neighbours).
import sagalang_examples_effects as fx

from sagalang.context import Context, Failure
from sagalang.plugins import handler

UNSERVED_COUNTRIES = frozenset({"AQ"})


def _id(prefix: str, key: str) -> str:
    """A stable identifier derived from the idempotency key (same key, same id)."""
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


# ---- inventory ------------------------------------------------------------------


@handler("inventory.reserve")
def reserve(ctx: Context, sku: str, qty: int) -> dict[str, Any]:
    """Reserve ``qty`` units of ``sku``; fails with inventory.OutOfStock when short."""
    if qty <= 0:
        raise Failure("inventory.InvalidQuantity", f"quantity must be positive, got {qty}", retryable=False)

    def effect(conn: Any) -> dict[str, Any]:
        left = fx.take(conn, "stock", "sku", sku, qty, fx.STOCK_DEFAULT)
        if left is None:
            raise Failure("inventory.OutOfStock", f"not enough {sku} in stock for {qty}", retryable=False)
        return {"reservation_id": _id("R", fx.effect_key(ctx)), "sku": sku, "qty": qty, "left": left}

    result: dict[str, Any] = fx.apply(ctx, "inventory.reserve", {"sku": sku, "qty": qty}, effect)
    return result


@handler("inventory.release")
def release(ctx: Context, sku: str) -> dict[str, Any]:
    """Put this saga's reserved units of ``sku`` back in stock."""

    def reverse(conn: Any, args: dict[str, Any], result: dict[str, Any]) -> None:
        fx.give_back(conn, "stock", "sku", args["sku"], args["qty"])

    out: dict[str, Any] = fx.undo(ctx, "inventory.release", reverse)
    return out


# ---- payments -------------------------------------------------------------------


@handler("payments.charge")
def charge(ctx: Context, order: str, amount: float, card: str) -> dict[str, Any]:
    """Charge ``amount`` to ``card``; fails with payments.Declined for a declined card."""
    if amount < 0:
        raise Failure("payments.InvalidAmount", f"amount must not be negative, got {amount}", retryable=False)

    def effect(conn: Any) -> dict[str, Any]:
        if fx.card_declined(conn, card):
            raise Failure("payments.Declined", f"card ending {card[-4:]} was declined", retryable=False)
        return {"charge_id": _id("CH", fx.effect_key(ctx)), "order": order, "amount": round(amount, 2)}

    # The card number is a secret: only its last digits are stored.
    result: dict[str, Any] = fx.apply(
        ctx, "payments.charge", {"order": order, "amount": amount, "card": card[-4:]}, effect
    )
    return result


@handler("payments.refund")
def refund(ctx: Context, order: str) -> dict[str, Any]:
    """Refund this saga's charge for ``order`` (nothing to do if it never happened)."""
    out: dict[str, Any] = fx.undo(ctx, "payments.refund", lambda conn, args, result: None)
    return out


# ---- shipping -------------------------------------------------------------------


@handler("shipping.label")
def label(ctx: Context, order: str, country: str) -> dict[str, Any]:
    """Buy a shipping label."""

    def effect(conn: Any) -> dict[str, Any]:
        return {"label_id": _id("L", fx.effect_key(ctx)), "order": order, "country": country}

    result: dict[str, Any] = fx.apply(ctx, "shipping.label", {"order": order, "country": country}, effect)
    return result


@handler("shipping.void_label")
def void_label(ctx: Context, order: str) -> dict[str, Any]:
    """Void this saga's label."""
    out: dict[str, Any] = fx.undo(ctx, "shipping.void_label", lambda conn, args, result: None)
    return out


@handler("shipping.upgrade")
def upgrade(ctx: Context, order: str) -> dict[str, Any]:
    """Upgrade the shipment to express."""

    def effect(conn: Any) -> dict[str, Any]:
        return {"service": "express", "order": order}

    result: dict[str, Any] = fx.apply(ctx, "shipping.upgrade", {"order": order}, effect)
    return result


@handler("shipping.downgrade")
def downgrade(ctx: Context, order: str) -> dict[str, Any]:
    """Cancel this saga's express upgrade."""
    out: dict[str, Any] = fx.undo(ctx, "shipping.downgrade", lambda conn, args, result: None)
    return out


@handler("shipping.dispatch")
def dispatch(ctx: Context, order: str, label: str, country: str) -> dict[str, Any]:
    """Hand the parcel to the carrier (cannot be undone); fails with shipping.Undeliverable."""

    def effect(conn: Any) -> dict[str, Any]:
        if country.upper() in UNSERVED_COUNTRIES:
            raise Failure("shipping.Undeliverable", f"the carrier does not deliver to {country}", retryable=False)
        return {"tracking": _id("TRK", fx.effect_key(ctx)), "order": order, "label": label}

    result: dict[str, Any] = fx.apply(
        ctx, "shipping.dispatch", {"order": order, "label": label, "country": country}, effect
    )
    return result


# ---- e-mail ---------------------------------------------------------------------


@handler("email.send")
def send(ctx: Context, to: str, subject: str, body: str) -> dict[str, Any]:
    """Send an e-mail once per key; an address without '@' fails for good (email.InvalidAddress)."""

    def effect(conn: Any) -> dict[str, Any]:
        if "@" not in to:
            raise Failure("email.InvalidAddress", f"not an e-mail address: {to!r}", retryable=False)
        return {"message_id": _id("MSG", fx.effect_key(ctx)), "to": to}

    result: dict[str, Any] = fx.apply(ctx, "email.send", {"to": to, "subject": subject, "body": body}, effect)
    return result
