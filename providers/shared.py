"""What the processes of one bot share about providers: their health deadlines and their daily spend.

Each process's `ProviderManager` keeps deciding alone, from its own `HealthBook` and `DailySpend`, with no
round trip on a routing decision. A `SharedState` is bound to those two books and keeps them in step with
the other processes' in the background:

- every cooldown or circuit deadline a book sets or extends is published (`HealthBook.on_deadline`), and
  every deadline another process publishes is applied locally through `HealthBook.apply_remote`, which only
  ever extends: a deadline is the latest one any process has seen;
- every local spend is added to the day's shared total (`DailySpend.on_add`), and every total learned is
  applied through `DailySpend.observe`, which only ever raises today's figure.

Failure counts and the circuit's half-open trial stay per process. `LocalState`, the default, shares
nothing and costs nothing (no hook is installed). The Redis implementation is `providers.redis_state`;
`make_shared_state` picks one.

    shared = make_shared_state(os.environ.get("REDIS_URL"), prefix="aibot:")
    manager = ProviderManager(config, shared=shared)
    await manager.start()      # loads what the others know, subscribes; never raises for Redis
    ...
    await manager.aclose()     # stops the mirror too
"""

from __future__ import annotations

from typing import Protocol

from providers.budget import DailySpend
from providers.health import HealthBook

DEFAULT_PREFIX = "aibot:"


class SharedState(Protocol):
    def bind(self, health: HealthBook, spend: DailySpend) -> None:
        """Called once by the manager that owns the books, before `start`."""
        ...

    async def start(self) -> None:
        """Load what other processes know and begin following them. Must not raise for an unreachable
        store: the process serves on its local state and catches up once it is reachable."""
        ...

    async def aclose(self) -> None:
        """Stop following; idempotent."""
        ...


class LocalState:
    """Nothing shared: the books stay exactly as in a single process."""

    def bind(self, health: HealthBook, spend: DailySpend) -> None:
        pass

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def make_shared_state(redis_url: str | None, prefix: str = DEFAULT_PREFIX) -> SharedState:
    """`RedisState` when a Redis URL is given (imports the redis client only then), else `LocalState`."""
    if not redis_url:
        return LocalState()
    from providers.redis_state import RedisState

    return RedisState(redis_url, prefix=prefix)
