"""Name -> component registries, extended by decorators and by package entry points."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate registry name; the message lists what is registered."""

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0])


class Registry(Generic[T]):
    """A registry of named components of one kind.

    Components register with ``@registry.register("name")``. Plugins in other installed packages
    register through the entry-point group ``group`` (each entry point loads the object or a module
    whose import registers it); those are loaded lazily on the first lookup miss. ``validate(name,
    obj)``, when given, checks every registration, by decorator or entry point, and raises with the fix.
    """

    def __init__(self, kind: str, group: str | None = None, validate: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.validate = validate
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(f"{self.kind} {name!r} is already registered by {self._items[name]!r}")
            if self.validate is not None:
                self.validate(name, obj)
            self._items[name] = obj
            return obj

        return decorator

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.group is None:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            obj = ep.load()  # importing a plugin module may itself register the component
            if not isinstance(obj, types.ModuleType) and ep.name not in self._items:
                if self.validate is not None:
                    self.validate(ep.name, obj)
                self._items[ep.name] = obj

    def get(self, name: str) -> T:
        if name not in self._items:
            self._load_plugins()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "(none)"
            hint = f" or install a plugin exposing it in the {self.group!r} entry-point group" if self.group else ""
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {known}. Pick one of these{hint}.")
        return self._items[name]

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
