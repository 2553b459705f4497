"""`Catalogue`: what the bot may offer, read-only: the labels (in the providers file's order) and the
providers that have an adapter.

    catalogue = manager.catalogue
    catalogue.for_user(user_choice, Category.IMAGE)   # the user's label while it still fits, else the default
    catalogue.seeing(label)                          # a label that reads images: this one, else the first that can
"""

from __future__ import annotations

from collections.abc import Iterable

from providers.config import LabelConfig, ProvidersConfig
from providers.types import Category


class Catalogue:
    def __init__(self, config: ProvidersConfig, enabled_providers: Iterable[str]) -> None:
        self._labels: dict[str, LabelConfig] = dict(config.labels)
        self._providers: tuple[str, ...] = tuple(sorted(enabled_providers))

    def labels(self) -> list[LabelConfig]:
        """Every label, in file order."""
        return list(self._labels.values())

    def get(self, name: str) -> LabelConfig | None:
        return self._labels.get(name)

    def default(self, category: Category) -> LabelConfig | None:
        """The category's first label in the file; None when it has none."""
        return next((label for label in self._labels.values() if label.category is category), None)

    def for_user(self, chosen_name: str | None, category: Category) -> LabelConfig | None:
        """The chosen label while it still exists and is of this category, else the category's default."""
        chosen = self._labels.get(chosen_name) if chosen_name else None
        if chosen is not None and chosen.category is category:
            return chosen
        return self.default(category)

    def seeing(self, label: LabelConfig) -> LabelConfig | None:
        """`label` when it can see images (`vision = true`), else the file's first text label that can;
        None when no label can."""
        if label.vision:
            return label
        return next((lbl for lbl in self._labels.values() if lbl.category is Category.TEXT and lbl.vision), None)

    def enabled_providers(self) -> list[str]:
        """Names of the providers that have an adapter (a key and a known kind), sorted."""
        return list(self._providers)
