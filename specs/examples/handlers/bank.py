"""Handlers of transfer.saga: accounts, a ledger and notifications (simulated).

Failures are driven by data: ``seed_account(name, balance, overdraft=..., closed=...)``
makes a debit fail with bank.InsufficientFunds or a debit/credit fail with
bank.AccountClosed; unknown accounts open with 1000.00. ``inject_fault("bank.credit", n,
"bank.Unavailable")`` makes the next n credits fail transiently.
"""

from __future__ import annotations

import hashlib
from typing import Any

# The shared effects module sits beside this file (plugin files may import their neighbours).
import sagalang_examples_effects as fx

from sagalang.context import Context, Failure
from sagalang.plugins import handler


def _id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _open(conn: Any, name: str) -> Any:
    row = fx.account(conn, name)
    if row["closed"]:
        raise Failure("bank.AccountClosed", f"account {name} is closed", retryable=False)
    return row


@handler("bank.balance")
def balance(ctx: Context, account: str) -> dict[str, Any]:
    """Read an account's balance and overdraft limit (read-only)."""
    with fx.transaction() as conn:
        fx.consume_fault(conn, "bank.balance")
        row = _open(conn, account)
        return {"account": account, "balance": row["balance"], "overdraft": row["overdraft"]}


@handler("bank.debit")
def debit(ctx: Context, account: str, amount: float, floor: float, memo: str) -> dict[str, Any]:
    """Take ``amount`` from ``account`` unless the balance would drop below ``floor``."""
    if amount <= 0:
        raise Failure("bank.InvalidAmount", f"amount must be positive, got {amount}", retryable=False)

    def effect(conn: Any) -> dict[str, Any]:
        row = _open(conn, account)
        if row["balance"] - amount < floor:
            raise Failure(
                "bank.InsufficientFunds",
                f"account {account} holds {row['balance']:.2f}; cannot debit {amount:.2f}",
                retryable=False,
            )
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE account = ?", (amount, account))
        return {"account": account, "amount": amount, "balance": round(row["balance"] - amount, 2)}

    result: dict[str, Any] = fx.apply(ctx, "bank.debit", {"account": account, "amount": amount, "memo": memo}, effect)
    return result


@handler("bank.reverse_debit")
def reverse_debit(ctx: Context, account: str) -> dict[str, Any]:
    """Put this saga's debit back on ``account``."""

    def reverse(conn: Any, args: dict[str, Any], result: dict[str, Any]) -> None:
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE account = ?", (args["amount"], args["account"]))

    out: dict[str, Any] = fx.undo(ctx, "bank.reverse_debit", reverse)
    return out


@handler("bank.credit")
def credit(ctx: Context, account: str, amount: float, memo: str) -> dict[str, Any]:
    """Add ``amount`` to ``account``: the point of no return (the payee sees the money)."""

    def effect(conn: Any) -> dict[str, Any]:
        row = _open(conn, account)
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE account = ?", (amount, account))
        return {"account": account, "amount": amount, "balance": round(row["balance"] + amount, 2)}

    result: dict[str, Any] = fx.apply(ctx, "bank.credit", {"account": account, "amount": amount, "memo": memo}, effect)
    return result


@handler("ledger.record")
def record(ctx: Context, entry: dict[str, Any]) -> dict[str, Any]:
    """Append a ledger entry once per key."""

    def effect(conn: Any) -> dict[str, Any]:
        return {"entry_id": _id("LE", fx.effect_key(ctx))}

    result: dict[str, Any] = fx.apply(ctx, "ledger.record", {"entry": entry}, effect)
    return result


@handler("notify.send")
def notify(ctx: Context, to: str, text: str) -> dict[str, Any]:
    """Notify an account holder once per key."""

    def effect(conn: Any) -> dict[str, Any]:
        return {"to": to, "message_id": _id("N", fx.effect_key(ctx))}

    result: dict[str, Any] = fx.apply(ctx, "notify.send", {"to": to, "text": text}, effect)
    return result
