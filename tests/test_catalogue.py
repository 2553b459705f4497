"""`manager.catalogue`: the labels in file order, a user's choice while it still fits, enabled providers."""

from __future__ import annotations

import httpx
import pytest

from providers import Catalogue
from providers.config import LabelConfig
from providers.manager import ProviderManager
from providers.types import Category
from tests.fakes.scripted import ScriptedAdapter, scripted_config

FAST = LabelConfig("Fast chat", Category.TEXT, 1)
SMART = LabelConfig("Smart chat", Category.TEXT, 5)
PICTURE = LabelConfig("Picture", Category.IMAGE, 10)


@pytest.fixture
def catalogue(http: httpx.AsyncClient) -> Catalogue:
    config = scripted_config(["zeta", "alpha", "off"], labels=[SMART, PICTURE, FAST], disabled=["off"])
    return ProviderManager(config, client=http, registry={"scripted": ScriptedAdapter}).catalogue


def test_labels_keep_the_file_order(catalogue: Catalogue) -> None:
    assert catalogue.labels() == [SMART, PICTURE, FAST]
    assert catalogue.get("Picture") == PICTURE and catalogue.get("Nope") is None


def test_the_default_is_the_categorys_first_label(catalogue: Catalogue) -> None:
    assert catalogue.default(Category.TEXT) == SMART
    assert catalogue.default(Category.IMAGE) == PICTURE
    assert catalogue.default(Category.VIDEO) is None


def test_a_users_choice_counts_while_it_exists_and_fits_the_category(catalogue: Catalogue) -> None:
    assert catalogue.for_user("Fast chat", Category.TEXT) == FAST
    assert catalogue.for_user("Removed since", Category.TEXT) == SMART
    assert catalogue.for_user("Picture", Category.TEXT) == SMART  # another category's label
    assert catalogue.for_user(None, Category.IMAGE) == PICTURE
    assert catalogue.for_user("", Category.VIDEO) is None


def test_enabled_providers_are_those_with_an_adapter_sorted(catalogue: Catalogue) -> None:
    assert catalogue.enabled_providers() == ["alpha", "zeta"]
