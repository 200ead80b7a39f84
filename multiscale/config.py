"""The one configuration loader of every ``multiscale`` command: YAML or TOML files checked
against a declarative schema.

:func:`read_config` parses a ``.yaml``/``.yml`` or ``.toml`` file; a syntax error is reported
with its line and column.  :func:`validate` checks the data against a schema built from
:class:`Section` (a mapping with known keys), :class:`Table` (a mapping with free keys, such as
phase names), :class:`ListOf`, :class:`Number`, :class:`Integer`, :class:`Text`,
:class:`Boolean` and :class:`OneOf`, and fills in defaults.  Every problem is a
:class:`ConfigError` (a ``ValueError``) whose message names the key path, e.g.
``micro.materials.matrix.E: expected a number, got 'stiff' (a string)``: unknown keys at any
depth, missing keys, nulls, wrong types and values out of range.

A command declares its schema once::

    SCHEMA = Section({
        "macro": Section({"mesh": Field(OneOf(Text(), MESH), required=True), ...}),
        "loading": Section({"steps": Field(Integer(min=1), default=10)}),
    })
    data = validate(read_config(path), SCHEMA)
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Boolean",
    "ConfigError",
    "Field",
    "Integer",
    "ListOf",
    "Number",
    "OneOf",
    "Section",
    "Table",
    "Text",
    "load",
    "read_config",
    "validate",
]

_MISSING = object()


class ConfigError(ValueError):
    """A problem with a configuration, naming the file (where known) and the key path."""


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Spec:
    """A rule for one value; :meth:`check` returns the (normalized) value or raises."""

    what = "a value"

    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}" if where else message)

    def wrong_type(self, value: Any, where: str) -> ConfigError:
        return self.fail(where, f"expected {self.what}, got {_show(value)} ({_kind(value)})")


@dataclass(frozen=True)
class Number(Spec):
    """A finite real number (an integer is accepted), optionally bounded: ``positive`` (> 0),
    ``min``/``max`` (inclusive) or ``below`` (exclusive)."""

    positive: bool = False
    min: float | None = None
    max: float | None = None
    below: float | None = None
    what = "a number"

    def check(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.wrong_type(value, where)
        v = float(value)
        if not math.isfinite(v):
            raise self.fail(where, f"must be finite, got {value!r}")
        if self.positive and v <= 0.0:
            raise self.fail(where, f"must be positive, got {value!r}")
        if self.min is not None and v < self.min:
            raise self.fail(where, f"must be at least {self.min:g}, got {value!r}")
        if self.max is not None and v > self.max:
            raise self.fail(where, f"must be at most {self.max:g}, got {value!r}")
        if self.below is not None and v >= self.below:
            raise self.fail(where, f"must be below {self.below:g}, got {value!r}")
        return v


@dataclass(frozen=True)
class Integer(Spec):
    """An integer (not a boolean; a float with an integral value is accepted), at least
    ``min`` and at most ``max``."""

    min: int | None = None
    max: int | None = None
    what = "an integer"

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.wrong_type(value, where)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise self.wrong_type(value, where)
        v = int(value)
        if self.min is not None and v < self.min:
            raise self.fail(where, f"must be at least {self.min}, got {value!r}")
        if self.max is not None and v > self.max:
            raise self.fail(where, f"must be at most {self.max}, got {value!r}")
        return v


@dataclass(frozen=True)
class Text(Spec):
    """A string, one of ``choices`` if given."""

    choices: tuple[str, ...] = ()
    what = "a string"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.wrong_type(value, where)
        if self.choices and value not in self.choices:
            raise self.fail(where, f"must be one of {list(self.choices)}, got {value!r}")
        if not value:
            raise self.fail(where, "must not be empty")
        return value


@dataclass(frozen=True)
class Boolean(Spec):
    """``true`` or ``false``."""

    what = "true or false"

    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.wrong_type(value, where)
        return value


@dataclass(frozen=True)
class ListOf(Spec):
    """A list whose items follow ``item``; ``length`` fixes its length, ``min_length`` bounds
    it."""

    item: Spec
    length: int | None = None
    min_length: int = 0

    @property
    def what(self) -> str:  # type: ignore[override]
        n = f" of {self.length}" if self.length is not None else ""
        return f"a list{n} ({self.item.what} each)"

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise self.wrong_type(value, where)
        if self.length is not None and len(value) != self.length:
            raise self.fail(where, f"expected {self.length} entries, got {len(value)}")
        if len(value) < self.min_length:
            raise self.fail(where, f"expected at least {self.min_length} entries, got {len(value)}")
        return [_value(self.item, v, f"{where}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class Field:
    """A key of a :class:`Section`: its rule, whether it is required, and its default."""

    spec: Spec
    required: bool = False
    default: Any = _MISSING


@dataclass(frozen=True)
class Section(Spec):
    """A mapping with known keys (``fields``); unknown keys are errors.  ``check``, if given,
    validates the whole section after its keys (e.g. keys that exclude each other) and returns
    an error message or ``None``."""

    fields: Mapping[str, Field]
    extra: Callable[[dict[str, Any]], str | None] | None = None
    what = "a mapping"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.wrong_type(value, where)
        unknown = [str(k) for k in value if k not in self.fields]
        if unknown:
            raise self.fail(
                where,
                f"unknown key(s) {sorted(unknown)}; allowed: {sorted(self.fields)}",
            )
        out: dict[str, Any] = {}
        for key, f in self.fields.items():
            path = f"{where}.{key}" if where else key
            if key in value:
                out[key] = _value(f.spec, value[key], path)
            elif f.required:
                raise self.fail(where, f"the key {key!r} is required")
            elif f.default is not _MISSING:  # checked too, so a section's own defaults fill in
                default = f.default() if callable(f.default) else f.default
                out[key] = _value(f.spec, default, path)
        if self.extra is not None:
            message = self.extra(out)
            if message:
                raise self.fail(where, message)
        return out


@dataclass(frozen=True)
class Table(Spec):
    """A mapping with free keys (names), each value following ``value``; at least
    ``min_length`` entries."""

    value: Spec
    min_length: int = 0
    what = "a mapping"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.wrong_type(value, where)
        if len(value) < self.min_length:
            raise self.fail(where, f"expected at least {self.min_length} entries")
        return {str(k): _value(self.value, v, f"{where}.{k}") for k, v in value.items()}


@dataclass(frozen=True)
class OneOf(Spec):
    """The first alternative whose type matches (a string, or a mapping, ...)."""

    options: Sequence[Spec] = field(default_factory=tuple)

    def __init__(self, *options: Spec) -> None:
        object.__setattr__(self, "options", tuple(options))

    @property
    def what(self) -> str:  # type: ignore[override]
        return " or ".join(o.what for o in self.options)

    def check(self, value: Any, where: str) -> Any:
        matching = [o for o in self.options if _type_matches(o, value)]
        if not matching:
            raise self.wrong_type(value, where)
        return matching[0].check(value, where)


def _type_matches(spec: Spec, value: Any) -> bool:
    if isinstance(spec, Section | Table):
        return isinstance(value, Mapping)
    if isinstance(spec, ListOf):
        return isinstance(value, list | tuple)
    if isinstance(spec, Text):
        return isinstance(value, str)
    if isinstance(spec, Boolean):
        return isinstance(value, bool)
    if isinstance(spec, Number | Integer):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _value(spec: Spec, value: Any, where: str) -> Any:
    if value is None:
        raise ConfigError(f"{where}: null is not allowed (give a value or leave the key out)")
    return spec.check(value, where)


# -- files --------------------------------------------------------------------------------------
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in the YAML (``.yaml``, ``.yml``) or TOML (``.toml``) file ``path``.

    Raises :class:`ConfigError` (with the line and column of a syntax error) or
    ``FileNotFoundError``.
    """
    path = Path(path)
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"{path}: expected a .yaml, .yml or .toml file")
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the file: {err}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except tomllib.TOMLDecodeError as err:
        m = _TOML_POSITION.search(str(err))
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "somewhere"
        reason = _TOML_POSITION.sub("", str(err)).strip()
        raise ConfigError(f"{path}: TOML syntax error at {where}: {reason}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        reason = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: YAML syntax error at {where}: {reason}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {_kind(data)}")
    return data


def validate(data: Any, schema: Spec, source: str | os.PathLike | None = None) -> Any:
    """``data`` checked against ``schema``, defaults filled in; errors name ``source``."""
    try:
        return _value(schema, data, "")
    except ConfigError as err:
        if source is None:
            raise
        raise ConfigError(f"{source}: {err}") from None


def load(path: str | os.PathLike, schema: Spec) -> dict[str, Any]:
    """:func:`read_config` then :func:`validate`."""
    return validate(read_config(path), schema, path)
