"""AI trading model configurations: create, list, read, update, delete.

Every write validates first and changes nothing on a bad value, with a message that
names the field.
"""

from __future__ import annotations

import builtins
import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ttg_lab.agents.base import baseline_ids
from ttg_lab.agents.factory import run_parameters, validate_agent
from ttg_lab.engine.snapshot import ModelConfig
from ttg_lab.errors import NotFoundError, RunStateError, ValidationError
from ttg_lab.market.markets import get_market
from ttg_lab.store.access import check_owner, visible_models
from ttg_lab.store.database import Store
from ttg_lab.store.leases import live_holder
from ttg_lab.store.schema import StockPrice, TradingModel, TradingRun, User, utcnow
from ttg_lab.text import check_name, check_text, refuse_secrets

DEFAULT_AI_MODEL = "baseline/momentum"
MAX_CASH = 1e12
EDITABLE_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "active",
    "initial_cash",
    "tickers",
    "ai_model_id",
    "parameters",
    "custom_rules",
    "custom_instructions",
)


def slugify(name: str) -> str:
    """A signature from a name: lower case, words joined by dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass(frozen=True)
class ModelInfo:
    """A read-only copy of a model row, safe to hand around threads."""

    id: int
    owner_id: int
    name: str
    signature: str
    description: str
    active: bool
    shared: bool
    market: str
    initial_cash: float
    tickers: list[str]
    ai_model_id: str
    parameters: dict[str, Any]
    custom_rules: str
    custom_instructions: str

    @classmethod
    def of(cls, row: TradingModel) -> ModelInfo:
        return cls(
            row.id,
            row.owner_id,
            row.name,
            row.signature,
            row.description,
            row.active,
            bool(row.shared),
            row.market,
            row.initial_cash,
            list(row.tickers),
            row.ai_model_id,
            dict(row.parameters),
            row.custom_rules,
            row.custom_instructions,
        )

    def config(self) -> ModelConfig:
        """The model as a new run's snapshot keeps it (defaults that depend on when the
        run started made explicit)."""
        return ModelConfig(
            name=self.name,
            signature=self.signature,
            market=self.market,
            ai_model_id=self.ai_model_id,
            parameters=run_parameters(self.ai_model_id, self.parameters),
            initial_cash=self.initial_cash,
            tickers=self.tickers,
            custom_rules=self.custom_rules,
            custom_instructions=self.custom_instructions,
        )


class ModelService:
    """CRUD over the ``models`` table for one lab user: only their own models, unless
    they are an admin."""

    def __init__(self, store: Store, user: User) -> None:
        self.store = store
        self.user = user

    def known_symbols(self, market: str) -> set[str]:
        with self.store.session() as session:
            return set(
                session.scalars(
                    select(StockPrice.symbol).where(StockPrice.market == market).distinct()
                )
            )

    def _validate(self, values: dict[str, Any]) -> dict[str, Any]:
        # a key anywhere is refused before any check could quote it back
        refuse_secrets({k: v for k, v in values.items() if k != "parameters"}, "model")
        values["name"] = check_name(values.get("name"), "name", 200)
        market = get_market(values["market"])
        cash = values.get("initial_cash")
        if isinstance(cash, bool) or not isinstance(cash, int | float) or not math.isfinite(cash):
            raise ValidationError(f"initial cash must be a number, got {cash!r}")
        if cash <= 0 or cash > MAX_CASH:
            raise ValidationError(
                f"initial cash must be above 0 and at most {MAX_CASH:g}, got {cash:g}"
            )
        values["initial_cash"] = float(cash)
        tickers = values.get("tickers") or []
        if isinstance(tickers, str):
            tickers = [t for t in re.split(r"[,\s]+", tickers) if t]
        tickers = sorted({str(t).strip().upper() for t in tickers})
        unknown = sorted(set(tickers) - self.known_symbols(market.code))
        if unknown:
            raise ValidationError(
                f"unknown ticker(s) in the {market.code} market: {', '.join(unknown)}"
            )
        values["tickers"] = tickers
        ai_model_id = values.get("ai_model_id") or DEFAULT_AI_MODEL
        values["ai_model_id"] = ai_model_id
        values["parameters"] = validate_agent(ai_model_id, values.get("parameters"))
        refuse_secrets({"parameters": values["parameters"]}, "model")
        for text in ("description", "custom_rules", "custom_instructions"):
            values[text] = check_text(values.get(text) or "", text)
        return values

    def create(
        self,
        name: str,
        ai_model_id: str = DEFAULT_AI_MODEL,
        market: str = "us",
        initial_cash: float = 10_000.0,
        tickers: list[str] | str | None = None,
        parameters: dict[str, Any] | None = None,
        description: str = "",
        custom_rules: str = "",
        custom_instructions: str = "",
        signature: str | None = None,
    ) -> ModelInfo:
        """A new model; ``signature`` (unique) defaults to the slug of ``name``."""
        refuse_secrets({"signature": signature or ""}, "model")
        values = self._validate(
            {
                "name": name,
                "ai_model_id": ai_model_id,
                "market": market,
                "initial_cash": initial_cash,
                "tickers": tickers,
                "parameters": parameters,
                "description": description,
                "custom_rules": custom_rules,
                "custom_instructions": custom_instructions,
            }
        )
        chosen = slugify(signature or values["name"])
        if not chosen:
            raise ValidationError(f"cannot make a signature from name {name!r}; give one")
        candidates = [chosen]
        if signature is None:  # a name another user took gets this user's suffix
            candidates.append(f"{chosen}-{slugify(self.user.username or str(self.user.id))}")
        for candidate in candidates:
            try:
                with self.store.session() as session:
                    row = TradingModel(owner_id=self.user.id, signature=candidate, **values)
                    session.add(row)
                    session.flush()
                    return ModelInfo.of(row)
            except IntegrityError:
                if self._owns_signature(candidate):
                    break
        raise ValidationError(f"a model with signature {chosen!r} exists already")

    def _owns_signature(self, signature: str) -> bool:
        with self.store.session() as session:
            owner = session.scalar(
                select(TradingModel.owner_id).where(TradingModel.signature == signature)
            )
        return owner == self.user.id

    def ensure(self, name: str, **fields: Any) -> ModelInfo:
        """The model called ``name``, created with ``fields`` when missing. Safe when several
        processes (a batch) ask at once: whoever loses the race gets the winner's model."""
        try:
            return self.get(name)
        except NotFoundError:
            pass
        try:
            return self.create(name, **fields)
        except ValidationError as exc:
            if "exists already" not in str(exc):
                raise
            return self.get(slugify(fields["signature"]) if fields.get("signature") else name)

    def get(self, ref: int | str | ModelInfo) -> ModelInfo:
        """A model the user may see (theirs, shared ones; any for an admin) by id,
        signature or name; the user's own model first where names repeat."""
        if isinstance(ref, ModelInfo):
            ref = ref.id
        if isinstance(ref, int) and not isinstance(ref, bool):
            match = TradingModel.id == ref
        elif isinstance(ref, str):
            match = (TradingModel.signature == ref) | (TradingModel.name == ref)
        else:
            raise ValidationError(f"a model is named by id, signature or name, got {ref!r}")
        query = visible_models(self.user, select(TradingModel).where(match)).order_by(
            (TradingModel.owner_id == self.user.id).desc(), TradingModel.id
        )
        with self.store.session() as session:
            row = session.scalars(query).first()
            if row is None:
                raise NotFoundError(f"no model {ref!r}")
            return ModelInfo.of(row)

    def owned(self, ref: int | str | ModelInfo) -> ModelInfo:
        """A model the user may change: their own (any for an admin)."""
        model = self.get(ref)
        check_owner(self.user, model.owner_id, f"model {model.signature}")
        return model

    def list(self) -> list[ModelInfo]:
        """The models the user may see: theirs and shared ones (every model for an admin)."""
        with self.store.session() as session:
            rows = session.scalars(
                visible_models(self.user, select(TradingModel)).order_by(TradingModel.id)
            )
            return [ModelInfo.of(r) for r in rows]

    def share(self, ref: int | str | ModelInfo, shared: bool = True) -> ModelInfo:
        """Show a model and its runs to every user, read-only (or stop showing them)."""
        model = self.owned(ref)
        with self.store.session() as session:
            row = session.get(TradingModel, model.id)
            assert row is not None
            row.shared = bool(shared)
            session.flush()
            return ModelInfo.of(row)

    def frame(self) -> pd.DataFrame:
        """The models as a table."""
        rows = [
            {
                "id": m.id,
                "name": m.name,
                "signature": m.signature,
                "market": m.market,
                "ai_model": m.ai_model_id,
                "cash": m.initial_cash,
                "tickers": len(m.tickers) or "all",
                "active": m.active,
                "shared": m.shared,
            }
            for m in self.list()
        ]
        return pd.DataFrame(rows)

    def update(self, ref: int | str | ModelInfo, **changes: Any) -> ModelInfo:
        """Change fields of a model; everything is validated before anything is saved."""
        unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
        if unknown:
            raise ValidationError(f"cannot edit field(s): {', '.join(unknown)}")
        current = self.owned(ref)
        merged = {f: getattr(current, f) for f in (*EDITABLE_FIELDS, "market")}
        merged.update(changes)
        if "ai_model_id" in changes and "parameters" not in changes:
            merged["parameters"] = {}
        active = bool(merged.pop("active"))
        values = self._validate(merged)
        values.pop("market")
        with self.store.session() as session:
            row = session.get(TradingModel, current.id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            row.active = active
            session.flush()
            return ModelInfo.of(row)

    def delete(self, ref: int | str | ModelInfo) -> None:
        """Delete a model with its runs and rules; refused while one of its runs is live
        (a process executing it still beats its heartbeat): stop it, or let it end, first."""
        model = self.owned(ref)
        with self.store.session() as session:
            # lock the model and its runs first, so no run of it starts or is resumed
            # until this transaction ends (the UPDATE takes SQLite's write lock)
            session.execute(
                update(TradingModel).where(TradingModel.id == model.id).values(updated_at=utcnow())
            )
            session.execute(
                select(TradingModel.id).where(TradingModel.id == model.id).with_for_update()
            )
            runs = session.scalars(
                select(TradingRun).where(TradingRun.model_id == model.id).with_for_update()
            )
            for run in runs:
                holder = live_holder(self.store.url, run)
                if holder is not None:
                    raise RunStateError(
                        f"model {model.signature} has a live run: run {run.id} "
                        f"(#{run.run_number}) in {holder}; stop it or let it end, then delete"
                    )
            session.execute(delete(TradingRun).where(TradingRun.model_id == model.id))
            session.execute(delete(TradingModel).where(TradingModel.id == model.id))

    @staticmethod
    def available_ai_models() -> builtins.list[str]:
        """Baselines first, then the catalog's LLMs, then the local server's example id
        (any ``<provider>/<model>`` of a local preset works too)."""
        from ttg_lab.llm.catalog import load_catalog
        from ttg_lab.llm.providers import EXAMPLE_LOCAL_IDS

        return baseline_ids() + sorted(load_catalog().models) + list(EXAMPLE_LOCAL_IDS)
