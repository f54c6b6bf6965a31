"""One definition per setting: an attrs field that carries its validator, help text, choices and flag.

``setting(...)`` is how ``RunSettings`` declares a field; the CLI's flags (``cli/flags.py``), the recipe keys
and ``run.json`` are derived from those fields, and so are the narrower configs built from them
(``TrainConfig`` is ``derived_config("TrainConfig", RunSettings, names)``), the way transformers'
``HfArgumentParser`` derives flags from dataclass fields. The validators here are shared by every
strategy config too: a bad value raises ``SettingError``, which is both a ``LoramError`` (one line, exit 2)
and a ``ValueError`` (so ``build_config`` can name the config it belongs to).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import attrs

from loram_core.configs import to_float, to_names
from loram_core.errors import LoramError


class SettingError(LoramError, ValueError):
    """A setting's value is out of its range or of the wrong type."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # "steps = true" is a mistake, not 1


def integer(minimum: int = 0):
    def check(_inst, attribute, value) -> None:
        if not _is_int(value) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise SettingError(f"{attribute.name} must be {what}, got {value!r}")

    return check


def number(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = True):
    """A finite number in the interval; the message prints the interval as written in maths."""

    def check(_inst, attribute, value) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            right = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
            raise SettingError(f"{attribute.name} must be a number in {'(' if low_open else '['}{low}, {right}, "
                               f"got {value!r}")

    return check


def one_of(choices: Iterable[str]):
    choices = tuple(choices)

    def check(_inst, attribute, value) -> None:
        if value not in choices:
            raise SettingError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return check


def boolean(_inst, attribute, value) -> None:
    if not isinstance(value, bool):
        raise SettingError(f"{attribute.name} must be true or false, got {value!r}")


def text(_inst, attribute, value) -> None:
    if not isinstance(value, str) or not value:
        raise SettingError(f"{attribute.name} must be a non-empty string, got {value!r}")


def optional_text(_inst, attribute, value) -> None:
    if value is not None:
        text(_inst, attribute, value)


def names(_inst, attribute, value) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise SettingError(f"{attribute.name} must be a non-empty list of names, got {value!r}")


def optional_names(_inst, attribute, value) -> None:
    if value != ():
        names(_inst, attribute, value)


def options(_inst, attribute, value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SettingError(f"{attribute.name} must be a table of KEY = VALUE, got {value!r}")


def _dict(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def to_tables(value: Any) -> Any:
    """A list of tables (TOML ``[[key]]``), or flag strings ``PATH`` / ``PATH@KEY=VALUE,KEY=VALUE``."""
    if not isinstance(value, (list, tuple)):
        return value
    tables = []
    for item in value:
        if isinstance(item, str):
            path, _, rest = item.partition("@")
            table: dict[str, Any] = {"path": path}
            for pair in filter(None, rest.split(",")):
                key, eq, text = pair.partition("=")
                if not eq:
                    raise SettingError(f"expected PATH@KEY=VALUE,..., got {item!r}")
                table[key.strip()] = text.strip()
            item = table
        tables.append(dict(item) if isinstance(item, dict) else item)
    return tuple(tables)


def tables(keys: Iterable[str]):
    """Each entry a table with a string ``path`` and only ``keys`` besides, all strings."""
    allowed = set(keys)

    def check(_inst, attribute, value) -> None:
        if not isinstance(value, tuple):
            raise SettingError(f"{attribute.name} must be a list of tables, got {value!r}")
        for n, table in enumerate(value):
            if not isinstance(table, dict) or not isinstance(table.get("path"), str) or not table["path"]:
                raise SettingError(f"{attribute.name}[{n}] must be a table with a path, got {table!r}")
            unknown = sorted(set(table) - allowed - {"path"})
            if unknown:
                raise SettingError(f"{attribute.name}[{n}]: unknown key(s) {', '.join(unknown)} "
                                   f"(known: path, {', '.join(sorted(allowed))})")
            if not all(isinstance(v, str) for v in table.values()):
                raise SettingError(f"{attribute.name}[{n}]: every value must be a string, got {table!r}")

    return check


# converters by the kind of value, so a flag's string and a recipe's TOML value end up the same
CONVERTERS = {"float": to_float, "names": to_names, "options": _dict, "tables": to_tables}


def setting(default: Any = attrs.NOTHING, *, help: str, group: str, kind: str | None = None, validator=None,
            converter=None, choices: Iterable[str] | None = None, flag: str | None = None, metavar: str | None = None,
            factory=None):
    """A settings field. ``kind`` (int, float, str, bool, names, options, layers) picks the flag's parser and
    the converter; ``choices`` adds a validator and the flag's choices; ``flag`` overrides the flag name."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(default), "str")
    validators = [v for v in (validator, one_of(choices) if choices else None) if v is not None]
    metadata = {"help": help, "group": group, "kind": kind, "choices": tuple(choices) if choices else None,
                "flag": flag, "metavar": metavar}
    return attrs.field(
        default=attrs.Factory(factory) if factory is not None else default,
        validator=validators or None,
        converter=converter or CONVERTERS.get(kind),
        metadata=metadata,
    )


def derived_config(name: str, source: type, field_names: Iterable[str], doc: str = "", **methods):
    """A frozen, keyword-only attrs class with ``source``'s definitions (default, validator, converter, help)
    of ``field_names``: a narrower view of the one schema, never a second copy of it."""
    by_name = {a.name: a for a in attrs.fields(source)}
    body = {}
    for n in field_names:
        a = by_name[n]
        body[n] = attrs.field(default=a.default, validator=a.validator, converter=a.converter, metadata=a.metadata)
    cls = attrs.make_class(name, body, frozen=True, kw_only=True, bases=(_Derived,))
    cls.__doc__ = doc
    for key, fn in methods.items():
        setattr(cls, key, fn)
    return cls


class _Derived:
    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build from user input (a recipe table, JSON); an unknown key is an error naming it."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LoramError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self, recurse=False).items()}
