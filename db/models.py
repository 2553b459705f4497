"""Typed models: users, requests, attempts, the credit ledger, payments, chat history and feed positions.

Money is integer micro-USD (`*_micros`); credits are integers. Timestamps are stored as naive UTC and come
back timezone-aware (UTC), so SQLite (no timezone type) and PostgreSQL behave the same. The rollup tables
that keep stats fast are in `db/rollup_tables.py` and share this metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

OPEN_STATUSES = ("reserved", "running")
CLOSED_STATUSES = ("served", "failed", "canceled")  # requests that ran; a refusal never did
TERMINAL_STATUSES = (*CLOSED_STATUSES, "refused")
LEDGER_REASONS = ("grant", "free", "charge", "refund", "admin_grant", "purchase", "purchase_refund")
PAYMENT_STATUSES = ("paid", "refunded")
PROMPT_MAX = 1000
MESSAGE_MAX = 300

# Named constraints: Alembic's batch mode on SQLite recreates tables and needs names to find them again.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the column; a naive value is refused rather than guessed."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware (UTC) one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _without_nul(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


class _PgString(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return _without_nul(value)


class _PgText(_PgString):
    impl = Text
    cache_ok = True


def Str(length: int | None = None) -> TypeEngine[str]:
    """Text from outside (users, providers). PostgreSQL refuses U+0000 in text, which SQLite stores: on
    PostgreSQL it becomes U+FFFD (same length, so trimming and history budgets count alike); SQLite keeps
    plain String/Text, unchanged."""
    if length is None:
        return Text().with_variant(_PgText(), "postgresql")
    return String(length).with_variant(_PgString(length), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("credits >= 0", name="credits_not_negative"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Telegram user id
    username: Mapped[str | None] = mapped_column(Str(64))
    first_name: Mapped[str | None] = mapped_column(Str(128))
    last_name: Mapped[str | None] = mapped_column(Str(128))
    tg_language: Mapped[str | None] = mapped_column(Str(16))  # from Telegram, refreshed on every update
    language: Mapped[str | None] = mapped_column(Str(16))  # chosen in the bot; wins over tg_language
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    credits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # category -> chosen label
    # Budget counters: credits spent in the local day/month named by the key; reset by the charging UPDATE
    # itself when the key moves on, so the budget check and the charge are one atomic statement.
    spent_day_key: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    spent_day: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    spent_month_key: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    spent_month: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Request(Base):
    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint("status IN ('reserved', 'running', 'served', 'failed', 'canceled', 'refused')", name="status"),
        CheckConstraint("credits_refunded >= 0 AND credits_refunded <= credits_charged", name="refund_range"),
        Index("ix_requests_user_created", "user_id", "created_at"),
        # Covering index: per-user sums over an hour range are read from the index alone (top_users edges).
        Index("ix_requests_created_cover", "created_at", "status", "user_id", "credits_charged",
              "credits_refunded", "cost_micros"),
        Index("ix_requests_status_created", "status", "created_at"),
        Index("ix_requests_status_lease", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # where to deliver after a restart
    thread_id: Mapped[int | None] = mapped_column(BigInteger)  # ... and in which forum topic of that group
    update_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # a re-delivery is not charged twice
    label: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(Str(PROMPT_MAX), default="")
    status: Mapped[str] = mapped_column(String(16), default="reserved")  # see db/repo/lifecycle.py
    route_first_provider: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(64))  # who served it
    model: Mapped[str | None] = mapped_column(String(128))
    fallback: Mapped[bool] = mapped_column(default=False, server_default=false())
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # frozen, never re-priced
    price_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the prices the cost was computed from
    credits_charged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    credits_refunded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Str(MESSAGE_MAX))
    provider_job_id: Mapped[str | None] = mapped_column(Str(255))
    job_provider: Mapped[str | None] = mapped_column(String(64))
    job_model: Mapped[str | None] = mapped_column(String(128))
    budget_day_key: Mapped[int | None] = mapped_column(Integer)  # which budget counters a refund gives back to
    budget_month_key: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(64))  # the process working on it while open
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # renewed by the owner; then the sweeper's
    delivering_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the answer is being sent: no /cancel
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # part of it reached Telegram: no refund
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    request_id: Mapped[int] = mapped_column(RowId, ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128), default="")
    category: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)  # 0 = first tried for the request
    kind: Mapped[str | None] = mapped_column(String(32))  # None = success, else the ErrorKind value
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    job_id: Mapped[str | None] = mapped_column(Str(255))
    message: Mapped[str | None] = mapped_column(Str(MESSAGE_MAX))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Payment(Base):
    """Credits bought with Telegram Stars: one row per Telegram charge id (unique), so a payment Telegram
    delivers twice, or to two fronts, is credited once. A refund marks the row; `credits_debited` is what
    was taken back (less than `credits` when the user had already spent them). `credits` is 0 for a
    payment whose invoice payload did not verify: its Stars are still counted, and it can be refunded."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("status IN ('paid', 'refunded')", name="status"),
        CheckConstraint("stars > 0", name="stars_positive"),
        CheckConstraint("credits >= 0", name="credits_not_negative"),
        CheckConstraint("credits_debited >= 0 AND credits_debited <= credits", name="debit_range"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    charge_id: Mapped[str] = mapped_column(String(255), unique=True)  # telegram_payment_charge_id
    provider_charge_id: Mapped[str | None] = mapped_column(Str(255))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    credits: Mapped[int] = mapped_column(BigInteger)
    stars: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Str(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="paid")
    credits_debited: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    refunded_by: Mapped[int | None] = mapped_column(BigInteger)  # the admin; None: refunded outside /refund


class LedgerEntry(Base):
    """Every change of a balance; a user's credits always equal the sum of their rows' `delta`. A payment
    has at most one row per reason (its purchase, its refund), whatever Telegram redelivers."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint("reason IN ('grant', 'free', 'charge', 'refund', 'admin_grant', 'purchase', "
                        "'purchase_refund')", name="reason"),
        UniqueConstraint("payment_id", "reason"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    delta: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(RowId, ForeignKey("requests.id"), index=True)
    by_admin: Mapped[int | None] = mapped_column(BigInteger)  # Telegram id of the admin who granted
    payment_id: Mapped[int | None] = mapped_column(RowId, ForeignKey("payments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedPosition(Base):
    """How far the bot has read a list kept outside it, oldest first (Telegram's Star transactions): the
    number of its items already read, so the next read skips them. It only moves forward."""

    __tablename__ = "feed_positions"
    __table_args__ = (CheckConstraint("position >= 0", name="position_not_negative"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HistoryMessage(Base):
    """One turn of a conversation: a private chat, a group, or a forum topic of a group (`thread_id`, 0 for
    none); `user_id` is who asked (their answer's turn too)."""

    __tablename__ = "chat_history"
    __table_args__ = (Index("ix_chat_history_conversation", "chat_id", "thread_id", "id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Str())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Core handles of the mapped tables, for hot paths where ORM bookkeeping costs more than the SQL itself
users_table = cast(Table, User.__table__)
requests_table = cast(Table, Request.__table__)
attempts_table = cast(Table, Attempt.__table__)
ledger_table = cast(Table, LedgerEntry.__table__)
payments_table = cast(Table, Payment.__table__)
feed_positions_table = cast(Table, FeedPosition.__table__)
