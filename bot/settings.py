"""The bot's settings: one pydantic-settings class read from the environment and `.env`.

Every field is documented in `.env.example`. Provider API keys are not here: the providers loader reads
them from the environment (see `providers.env.provider_env()`, which also folds in the `.env` file).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# re-exported: the bot and `python -m providers` share one reading of `.env` for provider keys
from providers.env import provider_env as provider_env

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class CreditPack:
    """What /buy sells: `credits` for `stars` (Telegram Stars, the XTR currency)."""

    credits: int
    stars: int


_PACK = re.compile(r"([1-9][0-9]{0,8}):([1-9][0-9]{0,8})")  # ASCII digits, as for ADMIN_IDS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr = SecretStr("")
    # NoDecode: "1,2,3" must not be parsed as JSON by pydantic-settings before our validator sees it
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    database_url: str = "sqlite+aiosqlite:///./data/bot.db"
    providers_file: str | None = None
    telegram_api_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"  # a webhook server behind a proxy listens on every interface
    webhook_port: int = Field(8080, ge=1, le=65535)
    digest_time: time = time(9, 0)
    timezone: str = "UTC"
    free_credits: int = Field(20, ge=0)
    daily_credit_limit: int = Field(0, ge=0)  # 0 = unlimited
    monthly_credit_limit: int = Field(0, ge=0)
    log_level: str = "INFO"

    # buying credits with Telegram Stars: "credits:stars,..." (empty: /buy offers nothing)
    credit_packs: Annotated[tuple[CreditPack, ...], NoDecode] = ()
    stars_usd_rate: Decimal = Field(Decimal("0.013"), ge=0)  # what one Star is worth in USD, for revenue
    payment_secret: SecretStr | None = None  # signs invoice payloads; empty: a key derived from BOT_TOKEN
    # Telegram's list of Star transactions read for payments whose update was lost: at start-up and this
    # often (0: never)
    stars_reconcile_minutes: float = Field(10.0, ge=0)

    # distributed mode: REDIS_URL set = fronts enqueue, `python -m bot.worker` processes run the requests
    redis_url: SecretStr | None = None  # may hold a password: never logged
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(0, ge=0, le=65535)  # /metrics (Prometheus text); 0 = not served
    worker_concurrency: int = Field(32, ge=1)  # requests one worker runs at once
    queue_wait_seconds: float = Field(600.0, ge=10)  # a request no worker took this long is refunded
    # Telegram's flood limits, kept by every process together (in Redis when distributed)
    telegram_sends_per_second: float = Field(30.0, gt=0)  # the whole bot (more with paid broadcasts)
    telegram_chat_sends_per_second: float = Field(1.0, gt=0)  # one private chat (short bursts pass)

    # tuning knobs
    stream_edit_interval: float = Field(1.0, ge=0)  # seconds between edits of a streamed reply (0: every delta)
    stream_drafts: bool = True  # private chats see a streamed reply as a native draft (sendMessageDraft)
    history_max_chars: int = Field(12_000, ge=0)  # conversation sent to the model, newest kept
    parallel_requests: int = Field(64, ge=1)  # requests worked on at once; more wait their turn, first come first
    request_lease_seconds: float = Field(30.0, ge=1)  # an open request not renewed for this long is an orphan
    sweep_interval_seconds: float = Field(60.0, ge=1)  # how often orphans are finished (resumed or refunded)
    progress_interval: float = Field(5.0, gt=0)  # seconds between edits of a long job's progress message
    progress_after: float = Field(5.0, ge=0)  # a job still running after this gets a progress message
    max_prompt_chars: int = Field(4000, ge=1)  # longer input is refused before anything is charged
    max_media_bytes: int = Field(50 * 1024 * 1024, ge=1)  # provider media larger than this is refused
    # documents sent to the bot (PDF, text, Markdown, source files); over a limit: refused, nothing charged
    max_document_bytes: int = Field(10 * 1024 * 1024, ge=1)  # Telegram lets bots download 20 MB at most
    max_document_pages: int = Field(100, ge=1)  # a PDF with more pages is refused
    max_document_chars: int = Field(40_000, ge=1)  # text past this is cut (the beginning is kept, the user told)
    throttle_rate: int = Field(8, ge=1)  # updates a user may send per throttle window...
    throttle_window: float = Field(5.0, gt=0)  # ...of this many seconds

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: Any) -> Any:
        """Only plain positive integers: `1,2,3` or a JSON list `[1, 2, 3]`. Anything int() or JSON would
        bend into a number (`1_2_3`, `123.9`, `true`, `1e3`, Arabic-Indic digits) is refused, naming the
        bad value: a silently wrong admin id either locks the owner out or lets a stranger in."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return frozenset()
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"ADMIN_IDS is not a JSON list of integers: {text!r}") from exc
                if not isinstance(items, list):
                    raise ValueError(f"ADMIN_IDS is not a JSON list of integers: {text!r}")
                return frozenset(_admin_id(item, text=False) for item in items)  # JSON "7" is text, not an id
            return frozenset(_admin_id(part.strip()) for part in text.split(","))
        if isinstance(value, (list, tuple, set, frozenset)):
            return frozenset(_admin_id(item, text=False) for item in value)
        return frozenset({_admin_id(value, text=False)})

    @field_validator("credit_packs", mode="before")
    @classmethod
    def _parse_credit_packs(cls, value: Any) -> Any:
        """`100:50,550:250`: each pack `credits:stars`, both plain positive integers, no pack twice."""
        if not isinstance(value, str):
            return value
        packs: list[CreditPack] = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            match = _PACK.fullmatch(part)
            if match is None:
                raise ValueError(f"CREDIT_PACKS holds {part!r}, which is not credits:stars "
                                 "(e.g. CREDIT_PACKS=100:50,550:250)")
            pack = CreditPack(int(match.group(1)), int(match.group(2)))
            if pack in packs:
                raise ValueError(f"CREDIT_PACKS names {part!r} twice")
            packs.append(pack)
        return tuple(packs)

    @field_validator("digest_time", mode="before")
    @classmethod
    def _parse_digest_time(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _HHMM.match(value.strip())
            if not match:
                raise ValueError(f"DIGEST_TIME must be HH:MM (24-hour), got {value!r}")
            return time(int(match.group(1)), int(match.group(2)))
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"TIMEZONE {value!r} is not a known IANA time zone (e.g. Europe/Berlin)") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"LOG_LEVEL {value!r} is not a loguru level")
        return level

    @field_validator("redis_url", "payment_secret", mode="before")
    @classmethod
    def _blank_secret_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_api_url", "webhook_url", "providers_file", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def distributed(self) -> bool:
        """Redis set: requests go through the queue to workers, and shared state lives in Redis."""
        return self.redis_url is not None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_admin(self, tg_id: int) -> bool:
        return tg_id in self.admin_ids


_PLAIN_ID = re.compile(r"[1-9][0-9]*")  # ASCII digits only: `\d` and int() also take other scripts' digits


def _admin_id(item: Any, text: bool = True) -> int:
    """One admin id: an int (never a bool or float), or where `text`, a string of ASCII digits."""
    if text and isinstance(item, str) and _PLAIN_ID.fullmatch(item):
        return int(item)
    if type(item) is int and item > 0:
        return item
    raise ValueError(f"ADMIN_IDS holds {item!r}, which is not a Telegram user id (a plain positive integer; "
                     "write ADMIN_IDS=1,2,3 or ADMIN_IDS=[1, 2, 3])")
