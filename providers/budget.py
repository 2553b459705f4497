"""Daily USD budget per provider: spend kept in memory per UTC day; over budget means skipped.

In memory on purpose: the budget is a safety brake for one process, not accounting (the database has
the real spend). After a restart the day starts from zero again, which errs on the side of serving.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from providers.health import Block, Clock, SystemClock


class DailySpend:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._day: date | None = None
        self._spent: dict[str, int] = {}

    def _today(self) -> dict[str, int]:
        today = self.clock.now().date()  # clocks give UTC
        if today != self._day:
            self._day, self._spent = today, {}
        return self._spent

    def add(self, provider: str, cost_micros: int) -> None:
        if cost_micros > 0:
            spent = self._today()
            spent[provider] = spent.get(provider, 0) + cost_micros

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
