"""Typed checks for the providers file: each failure names the file, the entry and what is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NoReturn

from providers.config import ProviderConfig, usd_to_exact_micros, usd_to_micros
from providers.kinds import KINDS
from providers.types import Category


class ProvidersFileError(ValueError):
    """The providers file is wrong; the message is `<file>: <entry>: <problem>`."""


def supported_categories(kind: str) -> frozenset[Category]:
    """What a kind can serve: what its API can do, narrowed to what its adapter implements."""
    from providers.adapters import ADAPTERS  # late: adapters import config types, not the loader

    api = KINDS[kind].categories
    adapter = ADAPTERS.get(kind)
    return api & adapter.categories if adapter is not None else api


class Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, entry: str, problem: str) -> NoReturn:
        raise ProvidersFileError(f"{self.source}: {entry}: {problem}")

    def table(self, entry: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(entry, f"must be a table, got {type(value).__name__}")
        return value

    def keys(self, entry: str, table: Mapping[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key == "api_key":
                self.fail(entry, "'api_key' does not belong in the file: put the key in the environment "
                                 "(NAME_API_KEY or the variable named by api_key_env)")
            if key not in allowed:
                self.fail(entry, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")

    def string(self, entry: str, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(entry, f"{key!r} must be a non-empty string, got {value!r}")
        return value.strip()

    def optional_string(self, entry: str, key: str, value: Any) -> str | None:
        return None if value is None else self.string(entry, key, value)

    def string_map(self, entry: str, value: Any) -> dict[str, str]:
        return {str(k): self.string(entry, str(k), v) for k, v in self.table(entry, value).items()}

    def number(self, entry: str, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(entry, f"{key!r} must be a number, got {value!r}")
        return float(value)

    def non_negative(self, entry: str, key: str, value: Any) -> float:
        number = self.number(entry, key, value)
        if number < 0:
            self.fail(entry, f"{key!r} must not be negative, got {value!r}")
        return number

    def positive(self, entry: str, key: str, value: Any) -> float:
        number = self.number(entry, key, value)
        if number <= 0:
            self.fail(entry, f"{key!r} must be greater than 0, got {value!r}")
        return number

    def positive_int(self, entry: str, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(entry, f"{key!r} must be a whole number >= 1, got {value!r}")
        return value

    def usd(self, entry: str, key: str, value: Any) -> int:
        """A price or budget in USD -> micro-USD (exact: via the decimal text of the TOML value)."""
        self.non_negative(entry, key, value)
        return usd_to_micros(Decimal(str(value)))

    def price(self, entry: str, key: str, value: Any) -> Decimal:
        """A price in USD -> exact micro-USD, unrounded: rounding happens once, on the cost it yields."""
        self.non_negative(entry, key, value)
        return usd_to_exact_micros(Decimal(str(value)))

    def category(self, entry: str, value: Any) -> Category:
        try:
            return Category(value)
        except ValueError:
            self.fail(entry, f"unknown category {value!r} (one of: {', '.join(c.value for c in Category)})")

    def route(self, entry: str, value: Any, providers: Mapping[str, ProviderConfig]) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            self.fail(entry, f"a route must be a list of provider names, got {value!r}")
        for name in value:
            if name not in providers:
                self.fail(entry, f"route names provider {name!r}, which is not defined in [providers]")
        if len(set(value)) != len(value):
            self.fail(entry, f"route lists a provider twice: {value!r}")
        return tuple(value)
