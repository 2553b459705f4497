"""Webhook mode (WEBHOOK_URL set): an aiohttp server receives updates; Telegram's secret header is checked.

The local path is the path of WEBHOOK_URL (a reverse proxy forwards https://host/path to
WEBHOOK_HOST:WEBHOOK_PORT/path). Without WEBHOOK_SECRET a random one is made for this run, so the
header is always checked.
"""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

from aiogram.exceptions import TelegramAPIError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from loguru import logger

from bot.app import BotApp
from bot.errors import StartupError
from bot.stopping import stop_on_signals


async def run_webhook(app: BotApp, stop: asyncio.Event | None = None) -> None:
    settings = app.settings
    assert settings.webhook_url
    given = settings.webhook_secret.get_secret_value() if settings.webhook_secret is not None else ""
    secret = given or secrets.token_urlsafe(32)
    path = urlsplit(settings.webhook_url).path or "/"
    server = web.Application()
    SimpleRequestHandler(dispatcher=app.dp, bot=app.bot, secret_token=secret,
                         handle_in_background=True).register(server, path=path)
    setup_application(server, app.dp, bot=app.bot)
    server.router.add_get("/metrics", app.life.metrics.handle)  # also served here, METRICS_PORT or not
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
    logger.info("webhook server on {}:{}{}", settings.webhook_host, settings.webhook_port, path)
    stop = stop or stop_on_signals()
    try:
        try:
            await app.bot.set_webhook(settings.webhook_url, secret_token=secret,
                                      allowed_updates=app.dp.resolve_used_update_types())
        except TelegramAPIError as exc:
            raise StartupError(f"Telegram refused WEBHOOK_URL {settings.webhook_url}: {exc.message}") from exc
        await stop.wait()
    finally:
        logger.info("stopping the webhook server")
        await runner.cleanup()

