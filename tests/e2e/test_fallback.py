"""The first text provider fails (rate limit, or out of credits): the second serves, the user is charged once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Database, StartBot
from tests.e2e.flows import all_text, eventually
from tests.e2e.harness import ADMIN_ID, FREE_CREDITS, SECONDARY_REPLY, Fakes
from tests.fakes.openai import openrouter_error

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]
USER = 2002

Failure = tuple[int, dict[str, Any], dict[str, str], str]  # status, body, headers, expected kind
RATE_LIMITED: Failure = (429, openrouter_error(429, "Rate limit exceeded: free-models-per-min."),
                         {"Retry-After": "30"}, "rate_limited")
NO_CREDITS: Failure = (402, openrouter_error(402, "Insufficient credits. Add more using https://openrouter.ai/credits",
                                             {"limit_source": "openrouter_credits"}), {}, "quota_exhausted")


@pytest.mark.parametrize(("status", "body", "headers", "kind"), [RATE_LIMITED, NO_CREDITS],
                         ids=["429", "402"])
async def test_second_provider_serves_when_the_first_fails(
        fakes: Fakes, start_bot: StartBot, db: Database, status: int, body: dict[str, Any],
        headers: dict[str, str], kind: str) -> None:
    tg = fakes.telegram
    fakes.primary.fail_next(status, body, headers)
    await start_bot()
    tg.push_message(USER, "Are you there?")
    await tg.wait_for(lambda: SECONDARY_REPLY in tg.texts(USER), timeout=20)

    assert len(fakes.primary.calls_to("/chat/completions")) == 1
    assert len(fakes.secondary.calls_to("/chat/completions")) == 1
    await eventually(lambda: db.credits(USER) == FREE_CREDITS - 1, what="charged once")
    [request] = await eventually(lambda: [r for r in db.requests(USER) if r["status"] == "served"],
                                 what="served request")
    assert request["provider"] == "secondary"
    attempts = db.rows("SELECT provider, kind, http_status FROM attempts WHERE request_id = ? ORDER BY position",
                       request["id"])
    assert [(a["provider"], a["kind"]) for a in attempts] == [("primary", kind), ("secondary", None)]
    assert attempts[0]["http_status"] == status
    if kind == "quota_exhausted":  # admins hear about a provider out of credits, once
        await tg.wait_for(lambda: "primary" in all_text(tg, ADMIN_ID), timeout=20)
