"""Admin commands answer admins with data; everyone else gets none; /digest sends a chart and a text.
On the shared bot: the admin chat is shared too, so each test looks at what arrived after it began."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Live
from tests.e2e.flows import ask, eventually, settle
from tests.e2e.harness import ADMIN_ID, FREE_CREDITS, PRIMARY_REPLY

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]


async def _one_served_chat(live: Live, user: int) -> None:
    live.tg.push_message(user, f"Hello from {user}")
    await live.tg.wait_for(lambda: PRIMARY_REPLY in live.tg.texts(user), timeout=20)
    await eventually(lambda: [r for r in live.db.requests(user) if r["status"] == "served"], what="served")


def _admin_text_since(live: Live, index: int) -> str:
    return "\n".join(t for m in live.tg.sent.get(ADMIN_ID, [])[index:] for t in m.history)


async def test_admin_commands(live: Live) -> None:
    tg, user = live.tg, 2301
    await _one_served_chat(live, user)

    start = len(tg.sent.get(ADMIN_ID, []))
    await ask(tg, ADMIN_ID, "/stats")
    await settle(tg)
    assert "primary" in _admin_text_since(live, start)  # the provider that served shows in the stats

    start = len(tg.sent[ADMIN_ID])
    await ask(tg, ADMIN_ID, "/providers")
    await settle(tg)
    for name in ("primary", "secondary", "replicate"):
        assert name in _admin_text_since(live, start)

    await ask(tg, ADMIN_ID, f"/grant {user} 50")
    await eventually(lambda: live.db.credits(user) == FREE_CREDITS - 1 + 50, what="credits granted")


async def test_non_admin_gets_no_data(live: Live) -> None:
    tg, user, stranger = live.tg, 2302, 3003
    await _one_served_chat(live, user)
    await settle(tg)
    admin_before = len(tg.sent.get(ADMIN_ID, []))
    for command in ("/stats", "/stats text 7d", "/providers", "/cost text", "/recommended text",
                    f"/grant {stranger} 1000", f"/user {user}", "/digest", "/export"):
        tg.push_message(stranger, command)
    await tg.wait_for(lambda: tg.pending_updates() == 0, timeout=20)
    await settle(tg)

    seen = "\n".join(t for m in tg.sent.get(stranger, []) for t in m.history)
    for secret in ("primary", "secondary", "replicate", str(user)):
        assert secret not in seen
    assert tg.media(stranger) == []  # no chart, no CSV
    assert len(tg.sent.get(ADMIN_ID, [])) == admin_before  # nor a digest sent to the admins on a stranger's word
    assert live.db.credits(stranger) in (None, FREE_CREDITS)


async def test_digest_sends_a_chart_and_a_text(live: Live) -> None:
    tg = live.tg
    await _one_served_chat(live, 2303)
    start = len(tg.sent.get(ADMIN_ID, []))
    tg.push_message(ADMIN_ID, "/digest today")  # today: the day that has served requests
    [chart] = await tg.wait_for(lambda: [m for m in tg.sent.get(ADMIN_ID, [])[start:] if m.media_kind == "photo"],
                                timeout=30)
    assert chart.file is not None and chart.file.data.startswith(b"\x89PNG")
    await settle(tg)
    assert "primary" in _admin_text_since(live, start)  # the caption, and the messages after it when long
