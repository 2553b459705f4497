"""Plain data crossing the db/ boundary: what the bot hands to the request's
life (`db.repo.lifecycle`), and what it gets back.

The bot copies fields from providers' `Attempt`/`Result` into these; db/ never imports providers/.
Kinds and categories are plain strings (`ErrorKind` and `Category` are `StrEnum`s, so they pass as is).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from db.periods import utcnow

ReservationStatus = Literal["ok", "duplicate", "insufficient", "budget_day", "budget_month", "busy"]
REFUSED: tuple[ReservationStatus, ...] = ("insufficient", "budget_day", "budget_month")


@dataclass(frozen=True, slots=True)
class Budget:
    """Credits a user may spend per local day and per local month (0 = unlimited), in `tz`."""

    per_day: int = 0
    per_month: int = 0
    tz: str = "UTC"


@dataclass(frozen=True, slots=True)
class Reservation:
    status: ReservationStatus
    request_id: int | None  # the new request (a refused one too); for "duplicate" the earlier one
    balance: int  # credits left after this reservation (or now, when refused)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One provider attempt; `kind` None is a success."""

    provider: str
    model: str
    category: str
    order: int
    kind: str | None
    http_status: int | None
    latency_ms: float
    cost_micros: int = 0
    job_id: str | None = None
    message: str = ""
    started_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class ServedRecord:
    provider: str
    model: str
    cost_micros: int
    latency_ms: float
    usage: Mapping[str, Any] = field(default_factory=dict)
    route_first_provider: str | None = None  # first provider of the route; set at reserve time if known
    fallback: bool | None = None  # None: served by someone other than route_first_provider
    prices: Mapping[str, Any] | None = None  # the price entries the cost was computed from, kept as is
    job_id: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """A request that has just reached a terminal state, and the credits its transition gave back."""

    request_id: int
    status: str  # served, failed, canceled
    refunded: int
    charged: int = 0
    category: str = ""
    label: str = ""  # the label's name


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a /cancel did: the requests it canceled (refunded), and the ones it could not stop because
    their answer was already going out."""

    canceled: tuple[Closed, ...]
    delivering: tuple[int, ...]

    @property
    def refunded(self) -> int:
        return sum(c.refunded for c in self.canceled)


@dataclass(frozen=True, slots=True)
class Orphan:
    """An open request whose owner stopped renewing its lease (a crash, a lost connection, a failed write)."""

    request_id: int
    tg_id: int
    chat_id: int | None
    category: str
    label: str
    prompt: str
    owner: str | None
    lease_until: datetime | None
    job_provider: str | None
    job_model: str | None
    job_id: str | None  # a provider job: resumed (polled), never created again
    credits: int
    delivered_at: datetime | None
    created_at: datetime
    thread_id: int | None = None  # the forum topic it was asked in: its answer goes there
