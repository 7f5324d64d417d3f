"""Masked runs: what a model sees of a run is translated so it cannot recognise the stocks
or the period from memory.

A :class:`Mask` gives every symbol a consistent pseudonym (``AAPL`` -> ``QZVX``; a crypto
pair keeps its quote: ``BTC-USDT`` -> ``QZVX-USDT``), scales its prices by a per-symbol
factor k (a masked price is real x k, a masked quantity real / k, so values, cash, fees,
equity and returns are unchanged while price levels no longer identify the stock) and
shifts dates forward by 28 or 56 years (the Gregorian calendar repeats every 28 years
between 1901 and 2099: weekdays, month and day are kept, holidays stay where they were).
Company names become pseudonym names (``Apple Inc.`` -> ``QZVX Corp``).

The mask translates at the outlets (prompt, tool arguments and answers, news): what is
stored stays real. :meth:`Mask.text` masks free text; :meth:`Mask.real_text` turns a
masked text back (a search query); :meth:`Mask.answer` masks a tool's JSON answer.
Limits: a number in free text is scaled only when it is a quantity written right before
its symbol ("cut to 300 AAPL"); other bare numbers are left as they are.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, cached_property
from typing import Any, TypeVar

from ttg_lab.errors import ValidationError, shown
from ttg_lab.market.universes import UNIVERSES

FACTORS: tuple[int, ...] = (2, 4, 5, 8, 10, 16, 20, 25)
"""The price factors a symbol may get (a masked price is real x k)."""

YEAR_SHIFTS: tuple[int, ...] = (28, 56)
"""The date shifts, in years: multiples of 28, so the calendar repeats exactly."""

LAST_YEAR = 2099
"""The last year a shifted date may fall in: 2100 is not a leap year, so the calendar's
28-year cycle breaks there."""

PSEUDONYM_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"
"""Consonants only: a pseudonym is never an English word a query or a text might hold."""

PSEUDONYM_LENGTH = 4

PRICE_KEYS: frozenset[str] = frozenset(
    {"open", "high", "low", "close", "price", "last_close", "fill_price"}
)
"""Keys of a tool answer whose number is a price of the dict's symbol (scaled by k)."""

QUANTITY_KEYS: frozenset[str] = frozenset(
    {"quantity", "held", "volume", "requested_quantity", "position"}
)
"""Keys of a tool answer whose number is a quantity of the dict's symbol (divided by k)."""

_NOT_BEFORE = r"(?<![A-Za-z0-9_])"
_NOT_AFTER = r"(?![A-Za-z0-9_])"
_NUMBER_BEFORE = r"(?<![\d.,$])"
_QUANTITY = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?"
"""A quantity as messages write it: ``300``, ``1,000``, ``2.5``, ``-5``, ``1e+08``."""
_QUANTITY_BEFORE = r"(?<![\w.,$+\-])"
_NUMBER_AFTER = r"(?!\d|[.,]\d)"
_YEAR = r"(?:199\d|20\d\d)"
_MONTH_DAY = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_DAY8 = _YEAR + _MONTH_DAY

T = TypeVar("T", date, datetime)


def _clean(value: float) -> float:
    """``value`` without the last bits of float noise a scaling leaves (12 digits kept)."""
    return float(f"{value:.12g}")


def _number_text(value: float) -> str:
    """A scaled number as text: whole numbers without a decimal point."""
    return f"{_clean(value):.12g}"


def _words(words: Sequence[str]) -> str:
    """An alternation of ``words``, longest first, so a pair wins over its base."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


@dataclass(frozen=True)
class Mask:
    """One run's mask: pseudonyms, price factors, the date shift and the company names.

    ``names`` maps a real symbol to its (real name, pseudonym name) pairs. Methods taking
    ``sym`` take the REAL symbol (the tool boundary translates the symbol first).
    """

    seed: int
    years: int
    pseudonyms: Mapping[str, str]
    factors: Mapping[str, int]
    names: Mapping[str, tuple[tuple[str, str], ...]]

    # -- symbols ---------------------------------------------------------------------

    def symbol(self, real: str) -> str:
        """The pseudonym of real symbol ``real``."""
        try:
            return self.pseudonyms[real]
        except KeyError:
            raise ValidationError(f"{shown(real)} is not a symbol of this run") from None

    def real_symbol(self, pseudo: object) -> str:
        """The real symbol of pseudonym ``pseudo`` (any case, spaces stripped); anything
        else is refused in masked terms, naming what was given."""
        key = pseudo.strip().upper() if isinstance(pseudo, str) else ""
        real = self._real_of.get(key)
        if real is None:
            known = ", ".join(sorted(self._real_of))
            raise ValidationError(f"unknown symbol {pseudo}; this run's symbols: {known}")
        return real

    @cached_property
    def _real_of(self) -> dict[str, str]:
        return {pseudo: real for real, pseudo in self.pseudonyms.items()}

    # -- numbers ---------------------------------------------------------------------

    def price(self, sym: str, value: float) -> float:
        """A real price of ``sym`` as the model sees it (x k)."""
        return _clean(value * self.factors[sym])

    def real_price(self, sym: str, value: float) -> float:
        """A masked price of ``sym`` back to real (/ k)."""
        return _clean(value / self.factors[sym])

    def quantity(self, sym: str, value: float) -> float:
        """A real quantity of ``sym`` as the model sees it (/ k)."""
        return _clean(value / self.factors[sym])

    def real_quantity(self, sym: str, value: float) -> float:
        """A masked quantity of ``sym`` back to real (x k: whole when the masked one is)."""
        return _clean(value * self.factors[sym])

    # -- time ------------------------------------------------------------------------

    def when(self, value: T) -> T:
        """A real date or time as the model sees it (``years`` later, same weekday)."""
        return self._shift(value, self.years)

    def real_when(self, value: T) -> T:
        """A masked date or time back to real."""
        return self._shift(value, -self.years)

    @staticmethod
    def _shift(value: T, years: int) -> T:
        try:
            return value.replace(year=value.year + years)
        except ValueError:
            raise ValidationError(
                f"date {value.isoformat()} cannot be shifted by {years} years"
            ) from None

    # -- text ------------------------------------------------------------------------

    @cached_property
    def _words_out(self) -> dict[str, tuple[str, str]]:
        """Every real word that names a symbol -> (its masked word, the real symbol)."""
        words: dict[str, tuple[str, str]] = {}
        for real, pseudo in self.pseudonyms.items():
            for real_word, pseudo_word in _symbol_words(real, pseudo):
                words.setdefault(real_word, (pseudo_word, real))
        return words

    @cached_property
    def _names_out(self) -> dict[str, str]:
        """Company names (lower case) -> pseudonym names."""
        return {
            real.lower(): pseudo for pairs in self.names.values() for real, pseudo in pairs if real
        }

    @cached_property
    def _text_pattern(self) -> re.Pattern[str]:
        parts = []
        words = _words(list(self._words_out))
        if words:
            tickers = f"{_NOT_BEFORE}(?:{words}){_NOT_AFTER}"
            parts.append(
                rf"{_QUANTITY_BEFORE}(?P<qty>{_QUANTITY})(?P<gap>\s+)(?P<qsym>{words}){_NOT_AFTER}"
            )
            parts.append(  # "AAPL x37", as the baselines write their orders
                rf"{_NOT_BEFORE}(?P<xsym>{words})(?P<times> x)(?P<xqty>{_QUANTITY}){_NOT_AFTER}"
            )
            parts.append(f"(?P<sym>{tickers})")
        names = _words(list(self._names_out))
        if names:
            parts.append(f"(?i:(?P<name>{_NOT_BEFORE}(?:{names}){_NOT_AFTER}))")
        parts.append(f"{_NUMBER_BEFORE}(?P<day8>{_DAY8}){_NUMBER_AFTER}")
        parts.append(f"{_NUMBER_BEFORE}(?P<year>{_YEAR}){_NUMBER_AFTER}")
        return re.compile("|".join(parts))

    def text(self, value: str) -> str:
        """``value`` as the model may read it: tickers (a pair's base, a CN code's digits)
        and company names replaced, a quantity written before its symbol (or after it as
        ``AAPL x37``) scaled, and every
        year 1990-2099 (in ISO, written, compact and Chinese dates) shifted."""
        return self._text_pattern.sub(self._mask_match, value)

    def _mask_match(self, match: re.Match[str]) -> str:
        if match["qty"] is not None:
            pseudo, real = self._words_out[match["qsym"]]
            qty = self.quantity(real, float(match["qty"].replace(",", "")))
            return f"{_number_text(qty)}{match['gap']}{pseudo}"
        if match["xqty"] is not None:
            pseudo, real = self._words_out[match["xsym"]]
            qty = self.quantity(real, float(match["xqty"].replace(",", "")))
            return f"{pseudo}{match['times']}{_number_text(qty)}"
        if match["sym"] is not None:
            return self._words_out[match["sym"]][0]
        if match["name"] is not None:
            return self._names_out[match["name"].lower()]
        if match["day8"] is not None:
            day = match["day8"]
            return f"{int(day[:4]) + self.years}{day[4:]}"
        return str(int(match["year"]) + self.years)

    @cached_property
    def _words_back(self) -> dict[str, str]:
        """Every masked word (upper case) that names a symbol or company -> the real one."""
        back: dict[str, str] = {}
        for real, pseudo in self.pseudonyms.items():
            for real_word, pseudo_word in _symbol_words(real, pseudo):
                back.setdefault(pseudo_word.upper(), real_word)
        for pairs in self.names.values():
            for real_name, pseudo_name in pairs:
                back.setdefault(pseudo_name.upper(), real_name)
        return back

    @cached_property
    def _back_pattern(self) -> re.Pattern[str]:
        words = _words(list(self._words_back))
        parts = [f"(?i:(?P<word>{_NOT_BEFORE}(?:{words}){_NOT_AFTER}))"] if words else []
        parts.append(f"{_NUMBER_BEFORE}(?P<day8>\\d{{4}}{_MONTH_DAY}){_NUMBER_AFTER}")
        parts.append(f"{_NUMBER_BEFORE}(?P<year>\\d{{4}}){_NUMBER_AFTER}")
        return re.compile("|".join(parts))

    def real_text(self, value: str) -> str:
        """A masked text back to real: pseudonyms and pseudonym names, and the years a
        masked text holds (1990-2099 shifted) shifted back (a search query runs on real
        data)."""
        return self._back_pattern.sub(self._real_match, value)

    def _real_match(self, match: re.Match[str]) -> str:
        if match["word"] is not None:
            return self._words_back[match["word"].upper()]
        text = match["day8"] or match["year"]
        year = int(text[:4]) - self.years
        return f"{year}{text[4:]}" if 1990 <= year <= 2099 else text

    # -- tool answers ----------------------------------------------------------------

    def answer(self, value: Any, sym: str | None = None) -> Any:
        """A tool's JSON answer as the model sees it: ``symbol`` values pseudonymised,
        prices and quantities of the dict's symbol (or the enclosing dict's) scaled, and
        every other text masked (times in it shifted: ``time``, ``as_of``,
        ``published_at`` are ISO text once the answer is JSON)."""
        if isinstance(value, dict):
            own = value.get("symbol")
            if isinstance(own, str) and own in self.pseudonyms:
                sym = own
            out: dict[str, Any] = {}
            for key, item in value.items():
                out[key] = self._answer_item(key, item, sym)
            return out
        if isinstance(value, list | tuple):
            return [self.answer(item, sym) for item in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, datetime | date):
            return self.when(value)
        return value

    def _answer_item(self, key: str, item: Any, sym: str | None) -> Any:
        number = isinstance(item, int | float) and not isinstance(item, bool)
        if key == "symbol" and isinstance(item, str):
            return self.pseudonyms.get(item) or self.text(item)
        if number and sym is not None and key in PRICE_KEYS:
            return self.price(sym, float(item))
        if number and sym is not None and key in QUANTITY_KEYS:
            return self.quantity(sym, float(item))
        return self.answer(item, sym)


def _symbol_words(real: str, pseudo: str) -> list[tuple[str, str]]:
    """The words that name a symbol and their masked forms: the symbol itself, a pair's
    base (``BTC`` of ``BTC-USDT``) and an A-share's code (``600519`` of ``600519.SH``)."""
    words = [(real, pseudo)]
    if "-" in real:
        words.append((real.split("-", 1)[0], pseudo.split("-", 1)[0]))
    code = re.fullmatch(r"(\d{6})\.[A-Z]{2}", real)
    if code:
        words.append((code[1], pseudo))
    return words


@cache
def shipped_symbols() -> frozenset[str]:
    """Every symbol of every shipped market, with a pair's base: what a pseudonym never is."""
    symbols: set[str] = set()
    for universe in UNIVERSES.values():
        for symbol in universe.symbols():
            symbols.update(word for word, _ in _symbol_words(symbol, symbol))
        symbols.update(universe.computed)
    return frozenset(symbols)


def make_mask(
    seed: int,
    symbols: Sequence[str],
    names: Mapping[str, tuple[str, ...]],
    *,
    lot_size: int = 1,
    last_day: date | None = None,
) -> Mask:
    """The mask of a run with ``seed`` over ``symbols`` (deterministic in both), with the
    symbols' company ``names``.

    ``lot_size``: the market's board lot; a market with lots gets only factors that divide
    it, so a lot is a whole number of masked units. ``last_day``: the run's last day,
    refused when its shifted date would cross 2100.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"a mask's seed must be a whole number, got {shown(seed)}")
    reals = sorted(set(symbols))
    if not reals or any(not isinstance(s, str) or not s.strip() for s in reals):
        raise ValidationError(f"a mask needs the run's symbols, got {shown(list(symbols))}")
    factors = [k for k in FACTORS if lot_size <= 1 or lot_size % k == 0]
    if not factors:
        raise ValidationError(f"no price factor divides the lot size {lot_size}")
    rng = random.Random(f"ttg-lab mask {seed} {' '.join(reals)}")
    years = YEAR_SHIFTS[rng.randrange(len(YEAR_SHIFTS))]
    if last_day is not None and last_day.year + years > LAST_YEAR:
        raise ValidationError(
            f"a masked run must end by {LAST_YEAR - years}-12-31 (dates are shifted by "
            f"{years} years and the calendar repeats only until {LAST_YEAR}); "
            f"this one ends {last_day.isoformat()}"
        )
    taken = set(shipped_symbols()) | {w for s in reals for w, _ in _symbol_words(s, s)}
    pseudonyms: dict[str, str] = {}
    for real in reals:
        base = _fresh(rng, taken)
        taken.add(base)
        pseudonyms[real] = f"{base}-{real.split('-', 1)[1]}" if "-" in real else base
    return Mask(
        seed=seed,
        years=years,
        pseudonyms=pseudonyms,
        factors={real: factors[rng.randrange(len(factors))] for real in reals},
        names={
            real: tuple(
                (name, f"{pseudonyms[real].split('-', 1)[0]} Corp")
                for name in names.get(real, ())
                if name
            )
            for real in reals
        },
    )


def _fresh(rng: random.Random, taken: set[str]) -> str:
    """A pseudonym not yet taken."""
    while True:
        word = "".join(rng.choice(PSEUDONYM_LETTERS) for _ in range(PSEUDONYM_LENGTH))
        if word not in taken:
            return word
