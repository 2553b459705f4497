"""Admin commands answer admins with data; everyone else gets none; /digest sends a chart and a text."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Database, StartBot
from tests.e2e.flows import all_text, ask, eventually, settle
from tests.e2e.harness import ADMIN_ID, FREE_CREDITS, PRIMARY_REPLY, Fakes

pytestmark = pytest.mark.e2e
USER, STRANGER = 2002, 3003


async def _one_served_chat(fakes: Fakes, db: Database) -> None:
    fakes.telegram.push_message(USER, "Hello")
    await fakes.telegram.wait_for(lambda: PRIMARY_REPLY in fakes.telegram.texts(USER), timeout=20)
    await eventually(lambda: [r for r in db.requests(USER) if r["status"] == "served"], what="served")


async def test_admin_commands(fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg = fakes.telegram
    await start_bot()
    await _one_served_chat(fakes, db)

    await ask(tg, ADMIN_ID, "/stats")
    await settle(tg)
    assert "primary" in all_text(tg, ADMIN_ID)  # the provider that served shows in the stats

    before = len(tg.sent[ADMIN_ID])
    await ask(tg, ADMIN_ID, "/providers")
    await settle(tg)
    providers_text = "\n".join(t for m in tg.sent[ADMIN_ID][before:] for t in m.history)
    for name in ("primary", "secondary", "replicate"):
        assert name in providers_text

    await ask(tg, ADMIN_ID, f"/grant {USER} 50")
    await eventually(lambda: db.credits(USER) == FREE_CREDITS - 1 + 50, what="credits granted")


async def test_non_admin_gets_no_data(fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg = fakes.telegram
    await start_bot()
    await _one_served_chat(fakes, db)
    for command in ("/stats", "/stats text 7d", "/providers", "/cost text", "/recommended text",
                    f"/grant {STRANGER} 1000", f"/user {USER}", "/digest", "/export"):
        tg.push_message(STRANGER, command)
    await tg.wait_for(lambda: tg.pending_updates() == 0, timeout=20)
    await settle(tg)

    seen = all_text(tg, STRANGER)
    for secret in ("primary", "secondary", "replicate", str(USER)):
        assert secret not in seen
    assert tg.media(STRANGER) == []  # no chart, no CSV
    assert tg.sent.get(ADMIN_ID, []) == []  # nor a digest sent to the admins on a stranger's word
    assert db.credits(STRANGER) in (None, FREE_CREDITS)


async def test_digest_sends_a_chart_and_a_text(fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg = fakes.telegram
    await start_bot()
    await _one_served_chat(fakes, db)
    tg.push_message(ADMIN_ID, "/digest")
    [chart] = await tg.wait_for(lambda: tg.media(ADMIN_ID, "photo"), timeout=30)
    assert chart.file is not None and chart.file.data.startswith(b"\x89PNG")
    await tg.wait_for(lambda: any(m.plain.strip() for m in tg.messages(ADMIN_ID) if m.media_kind is None),
                      timeout=10)
