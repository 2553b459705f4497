"""The database: typed models, Alembic migrations, repositories and stats (no aiogram, no providers).

    engine = make_engine()                         # DATABASE_URL, default sqlite+aiosqlite:///./data/bot.db
    await asyncio.to_thread(upgrade_database)      # alembic upgrade head
    sessions = make_session_maker(engine)
    async with sessions() as session, session.begin():
        reservation = await lifecycle.reserve_request(session, owner=..., lease_until=..., ...)
"""

from __future__ import annotations

from db.engine import DEFAULT_DATABASE_URL, make_engine, make_session_maker, upgrade_database
from db.periods import Period, period_between, period_named

__all__ = [
    "DEFAULT_DATABASE_URL", "Period", "make_engine", "make_session_maker", "period_between", "period_named",
    "upgrade_database",
]
