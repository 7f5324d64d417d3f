"""The store's tables: one typed ORM class per thing the platform keeps.

SQLite and PostgreSQL share this schema; Alembic migrations in ``migrations/`` create it.
Simulated (market) timestamps are naive exchange-local datetimes; wall-clock timestamps
(created, started...) are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")
IdType = BigInteger().with_variant(Integer(), "sqlite")


RunStatus = Literal["running", "completed", "stopped", "failed"]
"""What ``trading_runs.status`` holds."""
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
"""The statuses a run can have, in the order of :data:`RunStatus`."""
CallStatus = Literal["ok", "error", "replayed"]
"""What ``llm_calls.status`` holds: answered, failed (no usable answer), or from the record."""


def utcnow() -> datetime:
    """Wall-clock now, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints stably."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONType, list[Any]: JSONType}


Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class User(Base):
    """A person using the lab. ``approved`` is False while a sign-up awaits an admin;
    ``username`` is the login name (JupyterHub's ``JUPYTERHUB_USER``, ``TTG_LAB_USER``);
    ``db_role`` is the PostgreSQL role whose connections row-level security maps to them."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str | None] = mapped_column(String(64), unique=True, index=True, default=None)
    db_role: Mapped[str | None] = mapped_column(String(63), unique=True, index=True, default=None)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="user")  # admin | user
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TradingModel(Base):
    """An AI trading configuration: which agent, on which market, with what cash and rules."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    signature: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Visible to every user read-only (the imported AI-Trader runs, the demo baselines)."""
    market: Mapped[str] = mapped_column(String(16))
    initial_cash: Mapped[float] = mapped_column(Float)
    tickers: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    ai_model_id: Mapped[str] = mapped_column(String(200))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    custom_rules: Mapped[str] = mapped_column(Text, default="")
    custom_instructions: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    owner: Mapped[User] = relationship()


class ExperimentRow(Base):
    """Repeats of one model over one period and mode, started together as one experiment:
    run ``i`` of ``repeats`` has seed ``seed + i``. Owned by the user who started it."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    repeats: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime] = mapped_column(DateTime)
    period_end: Mapped[datetime] = mapped_column(DateTime)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)  # the first repeat's seed
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TradingRun(Base):
    """One execution of a model over a period; numbered 1, 2, 3... per model."""

    __tablename__ = "trading_runs"
    __table_args__ = (UniqueConstraint("model_id", "run_number", name="uq_run_number_per_model"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    run_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    mode: Mapped[str] = mapped_column(String(16))  # daily | intraday
    period_start: Mapped[datetime] = mapped_column(DateTime)
    period_end: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    strategy_snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    total_trades: Mapped[int] = mapped_column(Integer, default=0)
    final_return: Mapped[float | None] = mapped_column(Float, default=None)
    final_value: Mapped[float | None] = mapped_column(Float, default=None)
    max_drawdown: Mapped[float | None] = mapped_column(Float, default=None)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)  # host:pid running it
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # +1 per claim
    # LLM usage of the committed steps (the run's own cost, what a replay reproduces) ...
    llm_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    llm_cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # ... and of steps lost in a crash, a failure or a takeover (spent, but not the run's)
    wasted_llm_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    wasted_prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    wasted_completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    wasted_llm_cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id"), index=True, default=None
    )
    """The experiment the run is a repeat of (None: a run on its own)."""
    forward: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A run that trades forward on the wall clock, bar by bar as the provider releases them."""
    masked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A masked run: what its model saw was masked (see :mod:`ttg_lab.market.masking`)."""

    model: Mapped[TradingModel] = relationship()


class RunStep(Base):
    """The portfolio marked to market at the close of one calendar step (the equity curve)."""

    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "step_index", name="uq_run_step"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("trading_runs.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    holdings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    risk_state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The run's attempt (claim) that committed the step: its LLM calls are the step's."""
    data_seen: Mapped[str | None] = mapped_column(String(64), default=None)
    """Hash of the bars the step could see when decided (forward runs; None for backtests)."""
    skipped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A forward run's step missed while the run was down, recorded without a decision."""


class LedgerEntry(Base):
    """One action of a run: a fill, a refused order, or an explicit no-trade."""

    __tablename__ = "ledger"
    __table_args__ = (
        UniqueConstraint("run_id", "order_id", name="uq_ledger_order"),
        Index("ix_ledger_run_step", "run_id", "step_index"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("trading_runs.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime)
    action: Mapped[str] = mapped_column(String(16))  # buy|sell|short|cover|no_trade
    symbol: Mapped[str | None] = mapped_column(String(32), default=None)
    quantity: Mapped[float] = mapped_column(Float, default=0.0)
    fill_price: Mapped[float | None] = mapped_column(Float, default=None)
    fees: Mapped[float] = mapped_column(Float, default=0.0)
    cash_after: Mapped[float] = mapped_column(Float)
    holdings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    order_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # filled | rejected | none
    reason: Mapped[str] = mapped_column(Text, default="")


class AgentLog(Base):
    """The full message list an agent exchanged during one step."""

    __tablename__ = "agent_logs"
    __table_args__ = (Index("ix_agent_logs_run_step", "run_id", "step_index"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("trading_runs.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime)
    messages: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class ReasoningEntry(Base):
    """A typed piece of an agent's reasoning, with what it saw and the orders it led to."""

    __tablename__ = "reasoning_entries"
    __table_args__ = (Index("ix_reasoning_run_step", "run_id", "step_index"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("trading_runs.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime)
    type: Mapped[str] = mapped_column(String(16))  # plan|analysis|decision|reflection
    content: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    order_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class StockPrice(Base):
    """One OHLCV bar."""

    __tablename__ = "stock_prices"
    __table_args__ = (
        UniqueConstraint("market", "interval", "symbol", "ts", name="uq_stock_price_bar"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    market: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(DateTime)
    interval: Mapped[str] = mapped_column(String(8))  # 1d | 60min
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float, default=0.0)


class Dataset(Base):
    """A loaded market-data set, with the fingerprint runs record in their snapshot."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    market: Mapped[str] = mapped_column(String(16))
    interval: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    symbols: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    first_ts: Mapped[datetime] = mapped_column(DateTime)
    last_ts: Mapped[datetime] = mapped_column(DateTime)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelRule(Base):
    """A structured rule of a model, enforced by the order gate."""

    __tablename__ = "model_rules"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_model_rule_name"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    scope: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class UserTradingProfile(Base):
    """A user's own risk limits, applied to all of their models."""

    __tablename__ = "user_trading_profiles"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    experience: Mapped[str] = mapped_column(String(32), default="intermediate")
    risk_tolerance: Mapped[str] = mapped_column(String(32), default="moderate")
    max_position_pct: Mapped[float | None] = mapped_column(Float, default=None)
    max_open_positions: Mapped[int | None] = mapped_column(Integer, default=None)
    daily_loss_stop_pct: Mapped[float | None] = mapped_column(Float, default=None)
    min_cash_reserve_pct: Mapped[float | None] = mapped_column(Float, default=None)
    trading_hours: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    options_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    short_selling_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SignupAllowEntry(Base):
    """An admin-approved sign-up: an exact email or a whole domain (``@team.org``)."""

    __tablename__ = "signup_allowlist"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    pattern: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GlobalSetting(Base):
    """A platform-wide default or hard ceiling, set by an admin."""

    __tablename__ = "global_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ChatSession(Base):
    """An analyst conversation about one run."""

    __tablename__ = "chat_sessions"
    __table_args__ = (UniqueConstraint("model_id", "run_id", "user_id", name="uq_chat_session"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("trading_runs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChatMessage(Base):
    """One message of an analyst conversation."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | tool
    content: Mapped[str] = mapped_column(Text)
    tool_calls: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LLMCall(Base):
    """One request to a chat model and its answer, with tokens, latency and cost.

    Calls are written as they happen (not with the step), so the spend of a step that
    crashed is still counted. The calls of the attempt that committed a step are the
    run's (its cost, what replay reads); the others are its wasted spend
    (see :mod:`ttg_lab.store.usage`).
    """

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_run_step", "run_id", "step_index", "attempt"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("trading_runs.id", ondelete="CASCADE"), default=None
    )
    chat_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), default=None
    )
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    call_index: Mapped[int] = mapped_column(Integer, default=0)
    ai_model_id: Mapped[str] = mapped_column(String(200))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tool_calls: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[CallStatus] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NewsItem(Base):
    """A dated news item the search tool may serve once its publish time has passed.

    ``published_at`` is naive UTC; an item without one (None) is stored but never served.
    """

    __tablename__ = "news_items"
    __table_args__ = (Index("ix_news_items_published", "published_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    symbols: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    topics: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class GateDecisionRow(Base):
    """The gate's answer to one order: verdict, final quantity, every rule that fired, and
    the portfolio it was judged against. Counterfactual replays start from these."""

    __tablename__ = "gate_decisions"
    __table_args__ = (Index("ix_gate_decisions_run_step", "run_id", "step_index"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("trading_runs.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime)
    order_id: Mapped[str] = mapped_column(String(100))
    origin: Mapped[str] = mapped_column(String(216))  # agent | rule:<name>
    action: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(32))
    requested: Mapped[Any] = mapped_column(JSONType, default=None)
    quantity: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))  # a rules.gate.Verdict
    firings: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    portfolio: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
