"""Settings read from a file, checked against the typed dataclass they fill: a name it does not have, or a value of
another type, is one line naming where it came from and what the setting takes, before any work starts."""

from __future__ import annotations

import os
import types
import typing
from dataclasses import fields

from subsets.errors import InputError


def checked_settings(cls, values: dict, origin: str) -> dict:
    """`values` as `cls(**values)` takes them; a lone string where a list of strings is wanted becomes that list's one
    item (`methods: kcenter`, `targets: cache/`), as a user writing one of them means; and what a notebook passes for
    a path or a list (a `Path`, a tuple) becomes the string or list the settings file would hold."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)}, key=str)
    if unknown:
        raise InputError(f"{origin}: unknown setting(s) {', '.join(map(str, unknown))}")
    hints = typing.get_type_hints(cls)
    checked = {}
    for name, value in values.items():
        hint = hints[name]
        value = _as_read(value, hint)
        if not fits(value, hint):
            raise InputError(f"{origin}: {name} = {value!r} is not {type_words(hint)}")
        checked[name] = value
    return checked


def settle_fields(obj, origin: str) -> None:
    """A mutable dataclass's own fields checked as `checked_settings` checks a file's, each set to what it reads as."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    for name, value in checked_settings(type(obj), values, origin).items():
        setattr(obj, name, value)


def _as_read(value, hint):
    base, item = base_type(hint), _item_type(hint)
    if isinstance(value, os.PathLike) and str in (base, item):
        value = os.fspath(value)
    if isinstance(value, str) and item is str:
        return [value]
    if isinstance(value, tuple) and (typing.get_origin(base) or base) is list:
        value = list(value)
    if isinstance(value, list) and item is str:
        return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
    return value


def fits(value, hint) -> bool:
    """Whether a value read from YAML or JSON is of the type `hint` (an int is a float; a bool is neither)."""
    if value is None:
        return _optional(hint)
    base = base_type(hint)
    origin = typing.get_origin(base) or base
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        item = _item_type(hint)
        return isinstance(value, list) and (item is None or all(fits(v, item) for v in value))
    return isinstance(value, origin)


def type_words(hint) -> str:
    """`list[int] | None` -> 'a list of integers, or null': what a setting takes, as a user reads it."""
    base = base_type(hint)
    origin = typing.get_origin(base) or base
    if origin is list:
        item = _item_type(hint)
        words = "a list" + (f" of {_PLURAL.get(item, getattr(item, '__name__', str(item)))}" if item else "")
    else:
        words = _WORDS.get(origin, f"a {getattr(origin, '__name__', origin)}")
    return words + (", or null" if _optional(hint) else "")


_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "true or false values", dict: "mappings"}


def _optional(hint) -> bool:
    return type(None) in typing.get_args(hint)


def base_type(hint):
    """X for X | None, else the hint itself."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(t for t in typing.get_args(hint) if t is not type(None))
    return hint


def _item_type(hint):
    """X for list[X] (or list[X] | None); None for anything else, a bare `list` included."""
    base = base_type(hint)
    if typing.get_origin(base) is list:
        return typing.get_args(base)[0]
    return None
