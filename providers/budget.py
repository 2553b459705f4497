"""Daily USD budget per provider: spend kept in memory per UTC day; over budget means skipped.

In memory on purpose: the budget is a safety brake, not accounting (the database has the real spend), and
`blocked()` is asked on every routing decision, so it never waits for anything. Alone, a process starts
the day from zero after a restart, which errs on the side of serving. With a shared state
(providers.shared) every `add` is told to `on_add`, and `observe` raises a provider's figure to the day's
total across processes (never lowers it), so every process brakes on what all of them spent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from providers.health import Block, Clock, SystemClock


class DailySpend:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._day: date | None = None
        self._spent: dict[str, int] = {}
        # Told (provider, UTC day, micros) of every local spend; None: nobody listens.
        self.on_add: Callable[[str, date, int], None] | None = None

    def _today(self) -> dict[str, int]:
        today = self.clock.now().date()  # clocks give UTC
        if today != self._day:
            self._day, self._spent = today, {}
        return self._spent

    def add(self, provider: str, cost_micros: int) -> None:
        if cost_micros > 0:
            spent = self._today()
            spent[provider] = spent.get(provider, 0) + cost_micros
            if self.on_add is not None:
                assert self._day is not None
                self.on_add(provider, self._day, cost_micros)

    def observe(self, provider: str, day: date, total_micros: int) -> None:
        """The day's total across processes: raises today's figure to it; another day's is ignored."""
        spent = self._today()
        if day == self._day and total_micros > spent.get(provider, 0):
            spent[provider] = total_micros

    def today(self) -> date:
        """The UTC day being counted."""
        self._today()
        assert self._day is not None
        return self._day

    def spent(self, provider: str) -> int:
        return self._today().get(provider, 0)

    def blocked(self, provider: str, budget_micros: int | None) -> Block | None:
        if budget_micros is None:
            return None
        spent = self.spent(provider)
        if spent < budget_micros:
            return None
        assert self._day is not None
        midnight = datetime.combine(self._day + timedelta(days=1), time(0), tzinfo=UTC)
        return Block(midnight, "daily_budget",
                     f"over its daily budget (spent ${spent / 1e6:.4f} of ${budget_micros / 1e6:.4f})")
