"""One registry for the lab's pluggable parts, by name.

Bar file readers, news formats, agent tools and policies each keep a :class:`Registry`;
Step 4's data providers get one beside the market data. A part is added with
``register(name, item)`` and found with ``get(name)``; a second part under a taken name
and an unknown name are refused with a message that names the value (and, for an
unknown name, the known ones), so a plug-in cannot silently shadow a shipped part.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ttg_lab.errors import TTGLabError, ValidationError, shown

T = TypeVar("T")


class Registry(Generic[T]):
    """Named parts of one kind, in the order they were registered."""

    def __init__(self, kind: str, unknown: type[TTGLabError] = ValidationError) -> None:
        """``kind`` names the parts in messages ("bar file format"); ``unknown`` is the
        error an unknown name raises (a bad option by default, ``NotFoundError`` where
        a caller looks up a stored name)."""
        self.kind = kind
        self._unknown = unknown
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, replace: bool = False) -> T:
        """Add ``item`` under ``name`` and return it; a blank name is refused, and so is a
        taken one unless ``replace`` (a notebook cell run again redefines its part)."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValidationError(
                f"a {self.kind} needs a name without outer spaces, not {shown(name)}"
            )
        if name in self._items and not replace:
            raise ValidationError(f"a {self.kind} named {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The part named ``name``; an unknown name is refused naming the known ones
        (sorted, so the message reads the same whatever order they were added in)."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._items)) or "none"
            raise self._unknown(f"unknown {self.kind} {shown(name)}; known: {known}") from None

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._items)

    def items(self) -> tuple[tuple[str, T], ...]:
        """Every ``(name, part)`` pair, in registration order."""
        return tuple(self._items.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"


__all__ = ["Registry"]
