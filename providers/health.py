"""Provider health: cooldowns, circuit breakers and alert incidents, per provider and category.

Rules (design.md's table):
- rate_limited: the (provider, category) cools down for Retry-After, else `default_rate_limit_cooldown_s`.
- quota_exhausted / auth: the whole provider (every category) cools down for `long_cooldown_s` and an
  `Alert` is raised once per incident.
- unavailable / invalid_response: count consecutive failures; at `circuit_failures` the circuit opens
  for `circuit_open_s`; then it is half-open and lets exactly one trial call through: success closes
  it, failure re-opens it. A Retry-After on such a failure (HF "model loading") is honoured as a cooldown.
  A hang (an `unavailable` that cost the caller the provider's whole timeout) opens the circuit at once:
  it is the most expensive failure there is, so no other user should wait it out again this window.
- bad_request / content_policy: say nothing about the provider's health.
A deadline is only ever extended, never shortened. Decisions use the monotonic clock; the wall-clock
UTC datetimes kept beside them are for display and `retry_at`.

Across processes (providers.shared): every deadline this book sets or extends is told to `on_deadline`
as a `DeadlineNote` (UTC epoch seconds), and `apply_remote` extends a local deadline to one another
process set (never shortening it, never announcing it again). Failure counts and the half-open trial stay
per process: each process that sees a circuit's deadline pass lets its own single trial through.

An incident: it begins with a quota/auth failure of a provider that has no open incident, and it ends
when the provider serves a call that began after the incident began, or when its long cooldown runs
out. So admins hear once per cooldown window, not once per failed call, and again if the provider is
still broken when the window ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol

from providers.config import ManagerSettings
from providers.errors import ErrorKind, ProviderError
from providers.types import Category

_NEVER = float("-inf")


class Clock(Protocol):
    """Injectable time: `monotonic()` seconds for decisions, `now()` an aware UTC datetime for people."""

    def monotonic(self) -> float: ...
    def now(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Alert:
    """A provider needs a human: its quota ran out or its key was refused."""

    provider: str
    kind: ErrorKind
    message: str
    until: datetime  # the provider is parked until then (UTC)


@dataclass(frozen=True, slots=True)
class Block:
    """Why a provider cannot be called now, and when it can (UTC)."""

    until: datetime
    cause: str  # for code: an ErrorKind value, "circuit_open", "trial_in_flight" or "daily_budget"
    detail: str = ""

    @property
    def reason(self) -> str:
        """For people; formatted only when asked (the hot path skips blocked providers unformatted)."""
        if self.detail:
            return self.detail
        if self.cause == "circuit_open":
            return f"circuit open until {_iso(self.until)}"
        if self.cause == "trial_in_flight":
            return "circuit half-open: a trial call is in flight"
        return f"cooling down until {_iso(self.until)} ({self.cause})"


@dataclass(frozen=True, slots=True)
class CategoryHealth:
    cooldown_until: datetime | None  # UTC; None when it can be called now
    reason: str | None  # Block.cause: the error kind behind the cooldown, or circuit_open
    circuit: CircuitState
    consecutive_failures: int


DeadlineScope = Literal["cooldown", "circuit"]


@dataclass(frozen=True, slots=True)
class DeadlineNote:
    """A deadline as processes share it: `category` None is the whole provider (quota / auth parking, a
    cooldown); `until` is UTC epoch seconds; `reason` the error kind behind it."""

    provider: str
    category: Category | None
    scope: DeadlineScope
    until: float
    reason: ErrorKind


@dataclass(slots=True)
class _Deadline:
    until: float = _NEVER  # monotonic
    wall: datetime | None = None
    kind: ErrorKind | None = None

    def extend(self, until: float, wall: datetime, kind: ErrorKind) -> bool:
        if until > self.until:  # never shortened: a later, shorter Retry-After changes nothing
            self.until, self.wall, self.kind = until, wall, kind
            return True
        return False


@dataclass(slots=True)
class _Slot:
    cooldown: _Deadline = field(default_factory=_Deadline)
    circuit: _Deadline = field(default_factory=_Deadline)  # open until; then half-open
    circuit_tripped: bool = False
    failures: int = 0
    trial_in_flight: bool = False


@dataclass(slots=True)
class _ProviderState:
    parked: _Deadline = field(default_factory=_Deadline)  # quota / auth: all categories
    incident_began: float | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted call; hand it back with the outcome."""

    provider: str
    category: Category
    started: float
    trial: bool  # the single half-open trial call


class HealthBook:
    def __init__(self, settings: ManagerSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._slots: dict[tuple[str, Category], _Slot] = {}
        self._providers: dict[str, _ProviderState] = {}
        # Told every deadline this book sets or extends itself (not remote ones); None: nobody listens.
        self.on_deadline: Callable[[DeadlineNote], None] | None = None

    # --- decisions ---------------------------------------------------------------------------
    def blocked(self, provider: str, category: Category) -> Block | None:
        """Why (provider, category) may not be called now; None when it may. Callable again only once
        every deadline has passed, so the latest one is reported."""
        state = self._providers.get(provider)
        slot = self._slots.get((provider, category))
        if state is None and slot is None:
            return None
        now = self.clock.monotonic()
        latest: _Deadline | None = None
        for deadline in (state.parked if state else None, slot.cooldown if slot else None,
                         slot.circuit if slot is not None and slot.circuit_tripped else None):
            if deadline is not None and deadline.until > now and (latest is None or deadline.until > latest.until):
                latest = deadline
        if latest is not None:
            assert latest.wall is not None
            circuit = slot is not None and latest is slot.circuit
            return Block(latest.wall, "circuit_open" if circuit else str(latest.kind))
        if slot is not None and slot.circuit_tripped and slot.trial_in_flight:
            return Block(self.clock.now(), "trial_in_flight")
        return None

    def admit(self, provider: str, category: Category) -> Ticket | Block:
        """Claim a call; a half-open circuit hands out exactly one trial ticket at a time."""
        block = self.blocked(provider, category)
        if block is not None:
            return block
        slot = self._slots.get((provider, category))
        trial = slot is not None and slot.circuit_tripped
        if trial:
            assert slot is not None
            slot.trial_in_flight = True
        return Ticket(provider, category, self.clock.monotonic(), trial)

    # --- outcomes ----------------------------------------------------------------------------
    def success(self, ticket: Ticket) -> None:
        slot = self._slots.get((ticket.provider, ticket.category))
        if slot is not None:
            slot.failures = 0
            slot.circuit_tripped = False
            slot.trial_in_flight = False
        state = self._providers.get(ticket.provider)
        if state is not None and state.incident_began is not None and ticket.started > state.incident_began:
            state.incident_began = None  # it served: the incident is over

    def release(self, ticket: Ticket) -> None:
        """The call ended without telling anything about health (cancelled, bad request)."""
        if ticket.trial:
            self._slot(ticket.provider, ticket.category).trial_in_flight = False

    def failure(self, ticket: Ticket, error: ProviderError, *, hung: bool = False) -> Alert | None:
        """Apply the failure's rules; returns an Alert when it opens a new incident. `hung`: the call
        failed only after the provider's whole timeout."""
        kind = error.kind
        slot = self._slot(ticket.provider, ticket.category)
        if ticket.trial:
            slot.trial_in_flight = False
        if kind is ErrorKind.RATE_LIMITED:
            wait = error.retry_after_s
            self._extend(slot.cooldown, self.settings.default_rate_limit_cooldown_s if wait is None else wait, kind,
                         ticket.provider, ticket.category, "cooldown")
        elif kind.long_cooldown:
            return self._park(ticket.provider, error)
        elif kind in (ErrorKind.UNAVAILABLE, ErrorKind.INVALID_RESPONSE):
            slot.failures += 1
            if ticket.trial or hung or slot.failures >= self.settings.circuit_failures:
                slot.circuit_tripped = True
                self._extend(slot.circuit, self.settings.circuit_open_s, kind,
                             ticket.provider, ticket.category, "circuit")
            if error.retry_after_s:
                self._extend(slot.cooldown, error.retry_after_s, kind, ticket.provider, ticket.category, "cooldown")
        return None

    def _park(self, provider: str, error: ProviderError) -> Alert | None:
        state = self._providers.setdefault(provider, _ProviderState())
        now = self.clock.monotonic()
        incident_open = state.incident_began is not None and state.parked.until > now
        wait = max(self.settings.long_cooldown_s, error.retry_after_s or 0.0)
        self._extend(state.parked, wait, error.kind, provider, None, "cooldown")
        if incident_open:
            return None
        state.incident_began = now
        assert state.parked.wall is not None
        return Alert(provider, error.kind, error.message, state.parked.wall)

    # --- other processes ---------------------------------------------------------------------
    def apply_remote(self, note: DeadlineNote) -> bool:
        """Another process set this deadline: extend ours to it (converted from UTC epoch seconds to this
        process's monotonic clock). Never shortens one, never calls `on_deadline`. A remote whole-provider
        cooldown counts as an open incident here (that process raised the alert), so a call of ours that
        fails the same way within the window alerts nobody again. True when it changed anything."""
        left = note.until - self.clock.now().timestamp()
        if left <= 0:
            return False
        until, wall = self.clock.monotonic() + left, datetime.fromtimestamp(note.until, UTC)
        if note.category is None:
            state = self._providers.setdefault(note.provider, _ProviderState())
            extended = state.parked.extend(until, wall, note.reason)
            if extended and state.incident_began is None:
                state.incident_began = self.clock.monotonic()
            return extended
        slot = self._slot(note.provider, note.category)
        if note.scope == "circuit":
            extended = slot.circuit.extend(until, wall, note.reason)
            if extended:
                slot.circuit_tripped = True  # open until then; afterwards half-open here too
            return extended
        return slot.cooldown.extend(until, wall, note.reason)

    def deadlines(self) -> list[DeadlineNote]:
        """Every deadline still running, as notes (for a shared store that lost them)."""
        now = self.clock.monotonic()
        notes: list[DeadlineNote] = []

        def add(deadline: _Deadline, provider: str, category: Category | None, scope: DeadlineScope) -> None:
            if deadline.until > now and deadline.wall is not None and deadline.kind is not None:
                notes.append(DeadlineNote(provider, category, scope, deadline.wall.timestamp(), deadline.kind))

        for provider, state in self._providers.items():
            add(state.parked, provider, None, "cooldown")
        for (provider, category), slot in self._slots.items():
            add(slot.cooldown, provider, category, "cooldown")
            if slot.circuit_tripped:
                add(slot.circuit, provider, category, "circuit")
        return notes

    # --- views -------------------------------------------------------------------------------
    def category_health(self, provider: str, category: Category) -> CategoryHealth:
        block = self.blocked(provider, category)
        slot = self._slots.get((provider, category))
        now = self.clock.monotonic()
        circuit = CircuitState.CLOSED
        if slot is not None and slot.circuit_tripped:
            circuit = CircuitState.OPEN if slot.circuit.until > now else CircuitState.HALF_OPEN
        return CategoryHealth(block.until if block else None, block.cause if block else None, circuit,
                              slot.failures if slot else 0)

    def _slot(self, provider: str, category: Category) -> _Slot:
        return self._slots.setdefault((provider, category), _Slot())

    def _extend(self, deadline: _Deadline, seconds: float, kind: ErrorKind, provider: str,
                category: Category | None, scope: DeadlineScope) -> None:
        wall = self.clock.now() + timedelta(seconds=seconds)
        if deadline.extend(self.clock.monotonic() + seconds, wall, kind) and self.on_deadline is not None:
            self.on_deadline(DeadlineNote(provider, category, scope, wall.timestamp(), kind))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
