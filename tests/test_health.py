"""Health rules on their own: cooldowns, circuit breaker, alert incidents, the daily budget."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.budget import DailySpend
from providers.config import ManagerSettings
from providers.errors import ErrorKind
from providers.health import Alert, Block, CircuitState, HealthBook, Ticket
from providers.types import Category
from tests.fakes.scripted import FakeClock, failure

T, IMG = Category.TEXT, Category.IMAGE
RULES = ManagerSettings(long_cooldown_s=3600, default_rate_limit_cooldown_s=30, circuit_failures=3, circuit_open_s=60)


def book() -> tuple[HealthBook, FakeClock]:
    clock = FakeClock()
    return HealthBook(RULES, clock), clock


def ticket(health: HealthBook, provider: str = "a", category: Category = T) -> Ticket:
    admitted = health.admit(provider, category)
    assert isinstance(admitted, Ticket), admitted
    return admitted


@given(st.lists(st.tuples(st.floats(0, 500), st.one_of(st.none(), st.floats(0, 1000))), min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_a_deadline_never_shrinks(events: list[tuple[float, float | None]]) -> None:
    """429s arrive over time with assorted Retry-After values (some shorter than what is left): the
    provider is callable again exactly when the latest deadline seen so far has passed."""
    health, clock = book()
    latest = float("-inf")
    for advance, retry_after in events:
        clock.advance(advance)
        wait = 30.0 if retry_after is None else retry_after
        health.failure(Ticket("a", T, clock.monotonic(), False), failure(ErrorKind.RATE_LIMITED, retry_after))
        latest = max(latest, clock.monotonic() + wait)
        block = health.blocked("a", T)
        assert (block is None) == (latest <= clock.monotonic())
        if block is not None:
            assert abs(block.until - (clock.now() + timedelta(seconds=latest - clock.monotonic()))) < timedelta(
                milliseconds=1)


def test_rate_limit_is_per_category_quota_is_for_the_whole_provider() -> None:
    health, clock = book()
    health.failure(ticket(health, "a", T), failure(ErrorKind.RATE_LIMITED, 10))
    assert health.blocked("a", T) is not None and health.blocked("a", IMG) is None
    health.failure(ticket(health, "a", IMG), failure(ErrorKind.QUOTA_EXHAUSTED))
    for category in Category:
        block = health.blocked("a", category)
        assert block is not None and block.cause == "quota_exhausted"
        assert block.until == clock.now() + timedelta(seconds=3600)
    assert health.blocked("b", T) is None
    clock.advance(3600)
    assert health.blocked("a", T) is None


def test_circuit_opens_after_n_unavailable_and_half_open_allows_one_trial() -> None:
    health, clock = book()
    for n in range(3):
        assert health.category_health("a", T).circuit is CircuitState.CLOSED
        health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE, status=503))
        assert health.category_health("a", T).consecutive_failures == n + 1
    block = health.blocked("a", T)
    assert block is not None and block.cause == "circuit_open"
    assert health.category_health("a", T).circuit is CircuitState.OPEN
    assert health.blocked("a", IMG) is None  # other categories keep working
    clock.advance(59.9)
    assert isinstance(health.admit("a", T), Block)
    clock.advance(0.1)
    assert health.category_health("a", T).circuit is CircuitState.HALF_OPEN
    trial = ticket(health)
    assert trial.trial
    second = health.admit("a", T)
    assert isinstance(second, Block) and second.cause == "trial_in_flight"
    health.failure(trial, failure(ErrorKind.UNAVAILABLE))  # the trial failed: open again, a fresh window
    assert health.category_health("a", T).circuit is CircuitState.OPEN
    clock.advance(60)
    health.success(ticket(health))
    assert health.category_health("a", T) == health.category_health("z", T)  # closed, zero failures
    assert not ticket(health).trial


def test_a_success_resets_the_count_and_invalid_response_counts_as_a_failure() -> None:
    health, _ = book()
    health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE))
    health.failure(ticket(health), failure(ErrorKind.INVALID_RESPONSE))
    health.success(ticket(health))
    health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE))
    health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE))
    assert health.blocked("a", T) is None
    health.failure(ticket(health), failure(ErrorKind.INVALID_RESPONSE))
    assert health.blocked("a", T) is not None


def test_bad_request_and_cancellation_release_the_trial_without_judging() -> None:
    health, clock = book()
    for _ in range(3):
        health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE))
    clock.advance(60)
    trial = ticket(health)
    assert health.failure(trial, failure(ErrorKind.BAD_REQUEST, status=400)) is None
    again = ticket(health)
    assert again.trial
    health.release(again)
    assert ticket(health).trial
    assert health.category_health("a", T).circuit is CircuitState.HALF_OPEN


def test_unavailable_with_retry_after_is_honoured() -> None:
    health, clock = book()
    health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE, retry_after_s=20))  # HF: model loading
    block = health.blocked("a", T)
    assert block is not None and block.until == clock.now() + timedelta(seconds=20)


def test_alert_fires_once_per_incident() -> None:
    health, clock = book()
    early = ticket(health)  # a call already in flight when the incident begins
    alerts: list[Alert | None] = []
    first = ticket(health)
    alerts.append(health.failure(first, failure(ErrorKind.QUOTA_EXHAUSTED, status=402)))
    assert alerts[0] is not None and alerts[0].until == clock.now() + timedelta(seconds=3600)
    # More failures in the same incident (concurrent calls, another category, auth): silent.
    alerts.append(health.failure(Ticket("a", IMG, clock.monotonic(), False), failure(ErrorKind.AUTH, status=401)))
    alerts.append(health.failure(first, failure(ErrorKind.QUOTA_EXHAUSTED)))
    assert alerts[1:] == [None, None]
    health.success(early)  # began before the incident: proves nothing
    assert health.failure(first, failure(ErrorKind.QUOTA_EXHAUSTED)) is None
    # The cooldown runs out and the provider is still broken: a new incident, a new alert.
    clock.advance(3601)
    assert health.failure(ticket(health), failure(ErrorKind.QUOTA_EXHAUSTED)) is not None
    # It served a call begun during the incident: recovered; the next failure is news again.
    clock.advance(0.001)
    health.success(Ticket("a", T, clock.monotonic(), False))
    assert health.failure(Ticket("a", T, clock.monotonic(), False), failure(ErrorKind.AUTH)) is not None
    assert health.failure(Ticket("b", T, clock.monotonic(), False), failure(ErrorKind.AUTH)) is not None


def test_daily_budget_blocks_until_utc_midnight() -> None:
    clock = FakeClock()
    spend = DailySpend(clock)
    spend.add("a", 600)
    assert spend.blocked("a", 1000) is None and spend.blocked("a", None) is None
    spend.add("a", 400)
    block = spend.blocked("a", 1000)
    assert block is not None and block.cause == "daily_budget"
    assert block.until == clock.now().replace(hour=0, minute=0) + timedelta(days=1)
    assert spend.blocked("b", 1000) is None
    clock.advance(12 * 3600)  # 12:00 -> 00:00 the next day
    assert spend.blocked("a", 1000) is None and spend.spent("a") == 0


def test_a_hang_opens_the_circuit_at_once() -> None:
    health, _ = book()
    health.failure(ticket(health), failure(ErrorKind.UNAVAILABLE), hung=True)
    block = health.blocked("a", T)
    assert block is not None and block.cause == "circuit_open"


@given(st.lists(st.tuples(st.sampled_from(["quota", "auth", "ok", "wait"]), st.floats(0, 2000)), max_size=25))
@settings(max_examples=200, deadline=None)
def test_alerts_match_the_incident_model(events: list[tuple[str, float]]) -> None:
    """An incident begins with a quota/auth failure when none is open; it ends when a call begun after
    it began succeeds, or when the long cooldown has run out. One alert per incident."""
    health, clock = book()
    alerts, expected = 0, 0
    began: float | None = None
    parked_until = float("-inf")
    for event, value in events:
        now = clock.monotonic()
        if event == "wait":
            clock.advance(value)
        elif event == "ok":
            clock.advance(0.001)  # the call began now, and a clock tick later it served
            health.success(Ticket("a", T, clock.monotonic(), False))
            if began is not None and clock.monotonic() > began:
                began = None
        else:
            kind = ErrorKind.QUOTA_EXHAUSTED if event == "quota" else ErrorKind.AUTH
            alerts += health.failure(Ticket("a", T, now, False), failure(kind)) is not None
            if began is None or parked_until <= now:
                expected += 1
                began = now
            parked_until = max(parked_until, now + 3600)
    assert alerts == expected


@given(st.integers(1, 6), st.integers(0, 8))
@settings(max_examples=100, deadline=None)
def test_circuit_opens_exactly_at_n_consecutive_failures(n: int, failures: int) -> None:
    clock = FakeClock()
    health = HealthBook(ManagerSettings(circuit_failures=n, circuit_open_s=60), clock)
    for _ in range(failures):
        admitted = health.admit("a", T)
        if isinstance(admitted, Block):
            break
        health.failure(admitted, failure(ErrorKind.UNAVAILABLE))
    assert (health.blocked("a", T) is not None) == (failures >= n)
    clock.advance(60)
    trials = [health.admit("a", T) for _ in range(3)]
    admitted_now = [t for t in trials if isinstance(t, Ticket)]
    assert len(admitted_now) == (1 if failures >= n else 3)
    assert all(t.trial for t in admitted_now) == (failures >= n)
