"""One registry, for methods, datasets, evaluations, attacks and studies."""

import contextlib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order (the built-in ones first); ``what`` names an
    entry in errors ("method"), ``key`` the entry's attribute naming it ("name"; "kind")."""

    def __init__(self, what: str, key: str = "name") -> None:
        self.what, self.key, self._entries = what, key, {}

    def register(self, entry: T) -> T:
        """Add ``entry``; ValueError if its name is taken."""
        name = getattr(entry, self.key)
        if name in self._entries:
            raise ValueError(f"a {self.what} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    @contextlib.contextmanager
    def temporary(self, entry: T) -> Iterator[T]:
        """``with registry.temporary(entry):`` the entry exists inside the block only."""
        self.register(entry)
        try:
            yield entry
        finally:
            self.unregister(getattr(entry, self.key))

    def get(self, name: str) -> T:
        """The entry ``name``; a ValueError naming the registered ones otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise ValueError(f"{self.what} must be one of {self.names()}, got {name!r}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[T, ...]:
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries
