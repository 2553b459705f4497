"""`python -m bot`: check the configuration, migrate the database, then long polling (or a webhook).

Configuration mistakes (no BOT_TOKEN, a bad setting, a broken providers file) print one clear line and
exit with 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from loguru import logger
from pydantic import ValidationError

from bot.errors import StartupError
from bot.redaction import RedactingSink, provider_keys, remember
from bot.settings import Settings, provider_env
from bot.stopping import Serving, stop_on_signals
from db.engine import safe_url, upgrade_database
from providers.config import ProvidersConfig
from providers.loader import load_providers
from providers.loader_checks import ProvidersFileError

if TYPE_CHECKING:
    from bot.app import BotApp
    from bot.services.lifecycle import Queue

_TOKEN = re.compile(r"\d+:[\w-]+")


class _InterceptHandler(logging.Handler):
    """aiogram, aiohttp and APScheduler log through `logging`: send it all to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int = logger.level(record.levelname).name if record.levelname in (
            "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, "{}", record.getMessage())


def configure_logging(level: str, secrets: list[str]) -> None:
    """loguru to stderr at LOG_LEVEL, through a sink that masks every secret in the whole line, exception
    and traceback included (the bot token sits in every Bot API URL an aiohttp error quotes)."""
    remember(secrets)
    logger.remove()
    logger.add(RedactingSink(), level=level, backtrace=False, diagnose=False,
               format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{line} | {message}")
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    # httpx logs every provider request at INFO ("HTTP Request: POST ..."): a line per call routed through
    # loguru for what the request log already keeps; failures still reach the log through ProviderError.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # APScheduler says at INFO that each job ran (lease renewal: every few seconds); a job that raises is
    # still logged, at ERROR
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def prepare() -> tuple[Settings, ProvidersConfig] | int:
    """Settings, logging and the providers file, checked; an exit code when something is wrong."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return fail(f"bad settings: {problems}")
    token = settings.bot_token.get_secret_value()
    if not token:
        return fail("BOT_TOKEN is not set. Get one from @BotFather and put BOT_TOKEN=... in .env")
    if not _TOKEN.fullmatch(token):  # checked here, not by aiogram: importing it takes seconds
        return fail("BOT_TOKEN does not look like a bot token (digits:letters, from @BotFather)")
    env = provider_env()
    configure_logging(settings.log_level, [token, *provider_keys(env), *url_passwords(settings)])
    try:
        config = load_providers(settings.providers_file, env=env)
    except ProvidersFileError as exc:
        return fail(str(exc))
    remember(p.api_key for p in config.providers.values())  # a key under a name of the file's choosing
    return settings, config


def url_passwords(settings: Settings) -> list[str]:
    """The passwords in DATABASE_URL and REDIS_URL: secrets like the token."""
    from urllib.parse import urlsplit

    urls = [settings.database_url, settings.redis_url.get_secret_value() if settings.redis_url else ""]
    return [p for p in (urlsplit(u).password for u in urls if u) if p]


def main() -> int:
    prepared = prepare()
    if isinstance(prepared, int):
        return prepared
    settings, config = prepared
    try:
        asyncio.run(run(settings, config))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        return fail(str(exc))
    return 0


async def migrate(settings: Settings) -> None:
    try:
        await asyncio.to_thread(upgrade_database, settings.database_url)
    except Exception as exc:
        logger.opt(exception=exc).debug("migration failed")
        raise StartupError(f"cannot migrate the database at {safe_url(settings.database_url)}: {exc}") from exc


async def run(settings: Settings, config: ProvidersConfig) -> None:
    from bot.app import build_app
    from bot.core import freeze_startup_heap

    stop = stop_on_signals()  # first: a signal during migration or the wait for Telegram is a clean stop too
    await migrate(settings)
    async with front_queue(settings) as queue:
        app = build_app(settings, config, queue)
        freeze_startup_heap()
        serving = Serving(stop)
        try:
            await serving.run(_serve(app, serving), app.dp.stop_polling)
        finally:
            await app.aclose()
            logger.info("stopped")


@contextlib.asynccontextmanager
async def front_queue(settings: Settings) -> AsyncIterator[Queue | None]:
    """The distributed mode's queue to the workers (REDIS_URL set), else None: requests run here."""
    if settings.redis_url is None:
        yield None
        return
    from redis.asyncio import Redis

    from bot.services.dispatch import RedisQueue, make_broker
    from bot.worker import PREFIX

    url = settings.redis_url.get_secret_value()
    redis = Redis.from_url(url)
    broker = make_broker(url, PREFIX, idle_s=60.0)
    try:
        await broker.startup()
    except Exception as exc:
        await redis.aclose()
        raise StartupError(f"cannot reach Redis at REDIS_URL: {type(exc).__name__}: {exc}") from exc
    try:
        yield RedisQueue(broker, redis, PREFIX, wait_s=settings.queue_wait_seconds)
    finally:
        await broker.shutdown()
        await redis.aclose()


async def _serve(app: BotApp, serving: Serving) -> None:
    await app.wait_for_telegram(delete_webhook=not app.settings.webhook_url)
    if app.settings.webhook_url:
        from bot.webhook import run_webhook

        serving.started(ends_itself=True)
        await run_webhook(app, serving.stop)
    else:
        serving.started(ends_itself=False)
        # handle_signals=False: our handlers (bot.stopping) stay in place and stop polling through the dispatcher
        await app.dp.start_polling(app.bot, handle_as_tasks=True, close_bot_session=False, handle_signals=False,
                                   allowed_updates=app.dp.resolve_used_update_types())


if __name__ == "__main__":
    sys.exit(main())
