"""The masking audit: did anything real reach the model of a masked run?

:func:`audit_masking` reads every recorded request and response of a masked run (its
``llm_calls`` rows) and reports every real ticker, company name, real date and unscaled
price found in them, with where it was found. It is independent of the mask's own
translation: it never asks :meth:`Mask.text` or :meth:`Mask.answer` what a text should
be; it knows the run's real symbols (their names from :mod:`ttg_lab.market.names`), its
period and its symbols' real bars, and searches the recorded texts for them. The mask is
used only to know which symbol a masked text is about (its pseudonyms) and what its
masked prices are (its factors), so a number that is both is not called a leak.

What is looked for:

- tickers: the run's symbols (what its model trades), a pair's base (``BTC``) and an
  A-share's six digits, as whole words, case-sensitive;
- names: every company name of those symbols, as words, case-insensitive (a name in
  Chinese anywhere in the text);
- dates: ISO (``2025-06-10``, ``2025/06/10``, ``20250610``), written English
  (``June 10, 2025``, ``10 Jun 2025``, ``10th of June 2025``) and Chinese (``2025年6月10日``)
  dates of any day from 365 days before the run's start to its end;
- prices: a number with a decimal point and at least four significant digits, in a tool
  answer (about the symbol of its dict) or a prompt line (about the symbols the line
  names), that equals a real open, high, low or close of that symbol in the same window
  (or a fill at one, after the run's slippage) to the precision printed, while it is not
  also a masked price of it.

A clean audit means none of these were found; it does not mean the model could not
recognise the stocks or the period from what it saw (price paths, news content, sector
descriptions): masking is a lower bound on what a model remembers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import select

from ttg_lab.engine.reader import RunInfo, RunReader
from ttg_lab.errors import ValidationError
from ttg_lab.market.loader import read_price_frame
from ttg_lab.market.masking import Mask
from ttg_lab.market.names import company_names
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LLMCall, User

LeakKind = Literal["ticker", "name", "date", "price"]
"""What a finding is: a real ticker, a company name, a real date or an unscaled price."""

WINDOW_DAYS = 365
"""How far before a run's start its real dates and prices are looked for."""

MIN_PRICE_DIGITS = 4
"""Significant digits a number needs before it counts as a price: "0.6" or "12.5" equal
some real price of a cheap coin by chance, "201.50" does not."""

PRICE_COLUMNS = ("open", "high", "low", "close")

_SKIPPED_KEYS = frozenset({"id", "tool_call_id", "response_metadata", "usage_metadata", "type"})
"""Keys of a recorded message that hold no text the model read or wrote (ids, token
counts, the server's metadata)."""

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = r"(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?"
_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(?P<y>\d{4})[-/.](?P<m>[01]?\d)[-/.](?P<d>[0-3]?\d)(?!\d)"),
    re.compile(
        rf"(?<![A-Za-z])(?P<mn>{_MONTH})\.?\s+{_DAY.format('d')},?\s+(?P<y>\d{{4}})(?!\d)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?<!\d){_DAY.format('d')}\s+(?:of\s+)?(?P<mn>{_MONTH})\.?,?\s+(?P<y>\d{{4}})(?!\d)",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?<![\d.])(?P<y>(?:19|20)\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])(?![\d.])"
    ),
    re.compile(r"(?P<y>\d{4})\s*年\s*(?P<m>[01]?\d)\s*月\s*(?P<d>[0-3]?\d)\s*[日号]"),
)
_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+\.\d+(?![\d.])|(?<![\w.,])\d+\.\d+(?![\d.])")


@dataclass(frozen=True)
class Leak:
    """One real thing found in what a masked run's model read or wrote."""

    kind: LeakKind
    value: str
    where: str
    """The call and the part of it: ``call 12 (step 3) request message 2 (tool)``."""


@dataclass(frozen=True)
class MaskingAudit:
    """What :func:`audit_masking` checked in one run and what it found."""

    run_id: int
    calls_checked: int
    texts_checked: int
    leaks: tuple[Leak, ...]

    @property
    def clean(self) -> bool:
        """Whether nothing real was found."""
        return not self.leaks

    def summary(self) -> str:
        """One line: the run, what was checked and the verdict."""
        verdict = "clean" if self.clean else f"{len(self.leaks)} leaks"
        kinds = ", ".join(
            f"{kind} {n}"
            for kind in ("ticker", "name", "date", "price")
            if (n := sum(leak.kind == kind for leak in self.leaks))
        )
        detail = f" ({kinds})" if kinds else ""
        return (
            f"run {self.run_id}: {self.calls_checked} calls, {self.texts_checked} texts "
            f"checked: {verdict}{detail}"
        )


@dataclass(frozen=True)
class RecordedText:
    """One text of a recorded call: what it is, where it is, and whether numbers in it are
    prices the model was given (a tool answer or a prompt line, not the model's own words)."""

    text: str
    where: str
    given: bool


def audit_masking(store: Store, user: User, run_id: int) -> MaskingAudit:
    """The masking audit of run ``run_id``: one the user may see (else not found), and
    masked (else refused), audited against the mask its snapshot rebuilds."""
    info = RunReader(store, user).run(run_id)
    mask = info.snapshot.mask()
    if mask is None:
        raise ValidationError(f"run {run_id} is not masked: there is nothing to audit")
    return audit_run(store, info, mask)


def audit_run(store: Store, info: RunInfo, mask: Mask) -> MaskingAudit:
    """What every recorded call of run ``info`` holds of its real symbols, names, dates and
    prices, ``mask`` telling which pseudonym stands for which symbol (any run: an unmasked
    one shows what the audit finds when nothing is masked)."""
    detector = LeakDetector.for_run(store, info, mask)
    calls = _recorded_calls(store, info.id)
    texts = [text for call in calls for text in recorded_texts(call)]
    leaks: dict[Leak, None] = {}
    for text in texts:
        leaks.update(dict.fromkeys(detector.find(text)))
    return MaskingAudit(info.id, len(calls), len(texts), tuple(leaks))


def _recorded_calls(store: Store, run_id: int) -> list[LLMCall]:
    with store.session() as session:
        return list(
            session.scalars(select(LLMCall).where(LLMCall.run_id == run_id).order_by(LLMCall.id))
        )


def recorded_texts(call: LLMCall) -> Iterator[RecordedText]:
    """Every string of ``call``'s request messages and response, with where it is."""
    head = f"call {call.id} (step {call.step_index})"
    for number, message in enumerate(call.request.get("messages") or [], start=1):
        role = str(message.get("role", "?")) if isinstance(message, Mapping) else "?"
        where = f"{head} request message {number} ({role})"
        yield from _strings(message, where, given=role != "ai")
    data = call.response.get("data", call.response) if call.response else {}
    yield from _strings(data, f"{head} response", given=False)


def _strings(value: Any, where: str, given: bool, path: str = "") -> Iterator[RecordedText]:
    if isinstance(value, str):
        if value.strip():
            yield RecordedText(value, f"{where}{path}", given)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key not in _SKIPPED_KEYS:
                inner = "" if key == "content" else f" {key}"
                yield from _strings(item, where, given, f"{path}{inner}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, where, given, f"{path}[{index}]")


class LeakDetector:
    """Finds a run's real tickers, names, dates and prices in a text."""

    def __init__(
        self,
        symbols: Sequence[str],
        names: Mapping[str, tuple[str, ...]],
        window: tuple[date, date],
        prices: Mapping[str, Sequence[float]],
        mask: Mask,
    ) -> None:
        self.symbols = tuple(symbols)
        self.window = window
        self.prices = prices
        self.mask = mask
        words = {word: symbol for symbol in self.symbols for word in ticker_words(symbol)}
        self._tickers = _word_pattern(words, case_sensitive=True)
        self._names = _word_pattern(
            {name: symbol for symbol in self.symbols for name in names.get(symbol, ())},
            case_sensitive=False,
        )
        about: dict[str, str] = dict(words)
        for real, pseudo in mask.pseudonyms.items():
            about.update({word: real for word in ticker_words(pseudo)})
        self._about = about
        self._about_pattern = _word_pattern(about, case_sensitive=True)
        self._printed: dict[tuple[str, int, bool], frozenset[str]] = {}

    @classmethod
    def for_run(cls, store: Store, info: RunInfo, mask: Mask) -> LeakDetector:
        """The detector of run ``info``: its symbols (what it trades), their names, its window
        and its symbols' stored bars in that window, with the fill prices its cost model's
        slippage makes of them."""
        symbols = sorted(info.snapshot.tickers)
        first = info.start - timedelta(days=WINDOW_DAYS)
        frame = read_price_frame(store, info.market, info.interval, symbols, first, info.end)
        slip = info.costs.slippage_bps / 1e4
        prices: dict[str, list[float]] = {}
        for symbol, group in frame.groupby("symbol"):
            bars = set(group[list(PRICE_COLUMNS)].to_numpy().ravel().tolist())
            fills = {p * (1 + sign * slip) for p in bars for sign in (1, -1)} if slip else set()
            prices[str(symbol)] = sorted(bars | fills)
        return cls(
            symbols,
            {s: company_names(s) for s in symbols},
            (first.date(), info.end.date()),
            prices,
            mask,
        )

    def find(self, text: RecordedText) -> Iterator[Leak]:
        """Every leak in ``text``."""
        tickers: list[tuple[int, int]] = []
        if self._tickers is not None:
            for match in self._tickers.finditer(text.text):
                tickers.append(match.span())
                yield Leak("ticker", match.group(), text.where)
        if self._names is not None:  # a name inside a ticker (XRP of XRP-USDT) is that ticker
            for match in self._names.finditer(text.text):
                if not any(a < match.end() and match.start() < b for a, b in tickers):
                    yield Leak("name", match.group(), text.where)
        for found in _dates(text.text):
            if self.window[0] <= found[1] <= self.window[1]:
                yield Leak("date", found[0], text.where)
        if text.given:
            for printed in self._unscaled_prices(text.text):
                yield Leak("price", printed, text.where)

    def _unscaled_prices(self, text: str) -> Iterator[str]:
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if isinstance(answer, dict | list):
            yield from self._json_prices(answer, frozenset())
            return
        for line in text.splitlines():
            about = self._symbols_in(line)
            if about:
                for match in _NUMBER.finditer(line):
                    if self._is_real_price(match.group().replace(",", ""), about):
                        yield match.group()

    def _json_prices(self, value: Any, about: frozenset[str]) -> Iterator[str]:
        if isinstance(value, dict):
            named = value.get("symbol")
            if isinstance(named, str) and self._symbols_in(named):
                about = self._symbols_in(named)
            for key, item in value.items():
                inner = about | self._symbols_in(key) if isinstance(key, str) else about
                yield from self._json_prices(item, inner)
        elif isinstance(value, list):
            for item in value:
                yield from self._json_prices(item, about)
        elif isinstance(value, float) and about:
            printed = repr(value)
            if self._is_real_price(printed, about):
                yield printed
        elif isinstance(value, str) and about:
            for match in _NUMBER.finditer(value):
                if self._is_real_price(match.group().replace(",", ""), about):
                    yield match.group()

    def _symbols_in(self, text: str) -> frozenset[str]:
        if self._about_pattern is None:
            return frozenset()
        return frozenset(self._about[m.group()] for m in self._about_pattern.finditer(text))

    def _is_real_price(self, printed: str, about: frozenset[str]) -> bool:
        if "." not in printed or not printed.replace(".", "").isdigit():
            return False
        if len(printed.replace(".", "").lstrip("0")) < MIN_PRICE_DIGITS:
            return False
        decimals = len(printed.split(".", 1)[1])
        return any(
            printed in self._printed_prices(symbol, decimals, masked=False)
            and printed not in self._printed_prices(symbol, decimals, masked=True)
            for symbol in about
        )

    def _printed_prices(self, symbol: str, decimals: int, masked: bool) -> frozenset[str]:
        """The real (or masked) prices of ``symbol`` printed with ``decimals`` decimals."""
        key = (symbol, decimals, masked)
        if key not in self._printed:
            factor = self.mask.factors.get(symbol, 1) if masked else 1
            self._printed[key] = frozenset(
                f"{price * factor:.{decimals}f}" for price in self.prices.get(symbol, ())
            )
        return self._printed[key]


def ticker_words(symbol: str) -> tuple[str, ...]:
    """The words a text names ``symbol`` by: itself, a pair's base (``BTC``), an A-share's
    six digits (``600519``). The audit's own list, not the mask's: a word the mask forgot
    is then found, not forgotten twice."""
    words = [symbol]
    if "-" in symbol:
        words.append(symbol.split("-", 1)[0])
    code = re.fullmatch(r"(\d{6})\.[A-Z]{2}", symbol)
    if code:
        words.append(code[1])
    return tuple(words)


def _word_pattern(words: Mapping[str, str], case_sensitive: bool) -> re.Pattern[str] | None:
    """Any of ``words`` as a whole word (a word in CJK script anywhere), longest first."""
    if not words:
        return None
    alternatives = []
    for word in sorted(words, key=lambda w: (-len(w), w)):
        escaped = re.escape(word)
        if re.search(r"[\u3400-\u9fff]", word):
            alternatives.append(escaped)
        else:
            alternatives.append(rf"(?<![A-Za-z0-9_]){escaped}(?![A-Za-z0-9_])")
    return re.compile("|".join(alternatives), 0 if case_sensitive else re.IGNORECASE)


def _dates(text: str) -> Iterator[tuple[str, date]]:
    """Every date written in ``text`` (ISO, written English, Chinese), as written and read."""
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            parts = match.groupdict()
            month = _MONTHS[parts["mn"].lower()] if parts.get("mn") else int(parts["m"])
            try:
                yield match.group(), date(int(parts["y"]), month, int(parts["d"]))
            except ValueError:
                continue
