"""Who works on a request, and for how long: owner ids, and the leases a process holds and renews.

An owner id is `host:pid:token`, the token new at every start, so two starts of one process never share
an id. A process renews the leases of the requests it works on every third of `REQUEST_LEASE_SECONDS`,
in one statement. A request it stops renewing (a crash, or a write that kept failing) becomes an orphan
when its lease runs out, and the sweeper finishes it.

On the same host an owner is known to be gone without waiting for its lease: its process id is no longer
alive, or it is this process's own id under another token (an earlier start of a process that got the
same id, as in a container where the bot is always pid 1).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from db.periods import utcnow


def new_owner_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def gone_owners(me: str, owners: Iterable[str]) -> list[str]:
    """The owners among `owners` that ran on this host and are known to have stopped."""
    host, pid, _token = me.split(":", 2)
    gone = []
    for owner in owners:
        parts = owner.split(":", 2)
        if owner == me or len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if parts[1] == pid or not _pid_alive(int(parts[1])):
            gone.append(owner)
    return gone


class Leases:
    """The requests this process works on now (whose leases it renews)."""

    def __init__(self, owner: str, lease_s: float) -> None:
        self.owner = owner
        self.lease = timedelta(seconds=lease_s)
        self._held: set[int] = set()

    def until(self, now: datetime | None = None) -> datetime:
        return (now or utcnow()) + self.lease

    def hold(self, request_id: int) -> None:
        self._held.add(request_id)

    def drop(self, request_id: int) -> None:
        """Stop renewing: the request is closed, or left for the sweeper to finish."""
        self._held.discard(request_id)

    def held(self) -> list[int]:
        return sorted(self._held)

    def __contains__(self, request_id: int) -> bool:
        return request_id in self._held
