"""Lease owners: who drives a run, whether that process still lives, and the refusal message.

An owner id is ``host:pid:start`` where ``start`` is the process's start time
(from ``/proc`` where available), so a recycled pid is not mistaken for the
original owner. A lease held by a process on *this* host that no longer exists
is dead at once — ``sagalang resume`` right after a crash does not wait for
the lease to expire. Leases of other hosts are trusted until they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

from ..errors import StoreError
from .base import LeaseHeldError, Store

__all__ = [
    "DEFAULT_LEASE_TTL",
    "Lease",
    "LeaseHolder",
    "hold",
    "lease_held_error",
    "lease_is_live",
    "make_owner",
    "owner_is_dead",
    "owner_text",
    "parse_owner",
]

log = logging.getLogger("sagalang.journal")

DEFAULT_LEASE_TTL = 30.0  # seconds; the driving process renews well before this


def _start_token(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces; fields after the last ')' are fixed.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
    except OSError:
        return ""
    return fields[0] if fields else ""


def make_owner() -> str:
    """This process's owner id: ``host:pid:start``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_token(pid)}"


def parse_owner(owner: str) -> tuple[str, int | None, str]:
    """``(host, pid, start)`` of an owner id; pid is None for owners of another form."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    try:
        pid: int | None = int(pid_text)
    except ValueError:
        pid = None
    return host, pid, start


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` is a process on this host that has exited (or been replaced by a new pid)."""
    host, pid, start = parse_owner(owner)
    if pid is None or host != socket.gethostname():
        return False
    if pid == os.getpid():
        return owner != make_owner()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by another user
    if _state(pid) == "Z":  # exited, not yet reaped by its parent
        return True
    return bool(start) and _start_token(pid) not in ("", start)


class LeaseHolder(Protocol):
    """Anything that names a lease's owner and expiry: a :class:`~sagalang.journal.base.RunRecord`, a :class:`Lease`."""

    @property
    def owner(self) -> str | None:
        """Who holds the lease (None: nobody)."""

    @property
    def lease_until(self) -> float | None:
        """When it expires (seconds since the epoch)."""


class Lease(NamedTuple):
    """A lease as a store's row holds it."""

    owner: str | None
    lease_until: float | None


def lease_is_live(record: LeaseHolder, now: float | None = None) -> bool:
    """Whether a live process holds the lease: it has an owner, has not expired, and its owner has not exited.

    The one answer to "does somebody drive this run?" (``resume --all``, ``cancel``,
    the embedded stores' ``acquire``). An owner on another host is trusted until expiry.
    """
    if not record.owner or record.lease_until is None:
        return False
    if record.lease_until < (time.time() if now is None else now):
        return False
    return not owner_is_dead(record.owner)


def owner_text(owner: str) -> str:
    """An owner id as people read it: ``process PID on host HOST``."""
    host, pid, _ = parse_owner(owner)
    return f"process {pid} on host {host}" if pid is not None else f"owner {owner!r}"


def lease_held_error(run_id: str, owner: str | None, lease_until: float | None) -> LeaseHeldError:
    """The refusal a second driver of a run gets: who holds it and until when."""
    who = owner_text(owner or "?")
    until = (
        _dt.datetime.fromtimestamp(lease_until).astimezone().isoformat(timespec="seconds")
        if lease_until is not None
        else "an unknown time"
    )
    return LeaseHeldError(f"run {run_id} is being driven by {who}; try again after its lease expires at {until}")


@contextlib.asynccontextmanager
async def hold(
    store: Store, run_id: str, *, owner: str | None = None, ttl: float = DEFAULT_LEASE_TTL
) -> AsyncIterator[int]:
    """Drive ``run_id`` under a lease: take it (or raise LeaseHeldError), renew it, give it up.

    Yields the epoch (fencing token) to write the run's events with. The lease
    is renewed every ``ttl / 3`` seconds; if it is lost anyway (the process
    stalled past its expiry and another one took over), the next append fails
    with StaleEpochError, so a stale driver cannot write.
    """
    me = owner or make_owner()
    epoch = await store.acquire(run_id, me, ttl)
    if epoch is None:
        rec = await store.get_run(run_id)
        raise lease_held_error(run_id, rec.owner if rec else None, rec.lease_until if rec else None)

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await store.renew(run_id, me, epoch, ttl):
                    log.warning("run %s: lease lost to another process; its writes will be refused", run_id)
                    return
            except StoreError as err:  # a transient failure: the next renewal may succeed
                log.warning("run %s: cannot renew the lease: %s", run_id, err)

    renewer = asyncio.ensure_future(renew())
    try:
        yield epoch
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        try:
            await store.release(run_id, me, epoch)
        except StoreError as err:  # the lease simply expires
            log.warning("run %s: cannot release the lease: %s", run_id, err)
