"""Fixtures every test package may use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The client an adapter under test sends through; closed when the test ends."""
    async with httpx.AsyncClient() as client:
        yield client
